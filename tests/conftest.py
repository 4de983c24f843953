"""Shared pytest fixtures."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tests share a small machine: keep torch to one thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
