"""gsmoe.flops: multiply-adds of matrix products, counted while they run."""

from __future__ import annotations

import torch

from gsmoe.flops import MultiplyAddCounter
from gsmoe.nn import ExpertLinear
from gsmoe.nn.inputs import SparseFeatures


def test_counts_dense_batched_and_sparse_products_forward_and_backward() -> None:
    a, b = torch.randn(5, 7), torch.randn(7, 3)
    with MultiplyAddCounter() as counter:
        a @ b
        torch.addmm(torch.zeros(3), a, b)
        torch.bmm(torch.randn(2, 5, 7), torch.randn(2, 7, 3))
    assert counter.multiply_adds == 5 * 7 * 3 * (1 + 1 + 2)

    features = torch.zeros(6, 4)
    features[0, 1] = features[3, 2] = features[5, 0] = 1.0
    with MultiplyAddCounter() as counter:
        SparseFeatures(features).matmul(torch.randn(4, 8))
    assert counter.multiply_adds == 3 * 8  # non-zeros x columns

    experts = ExpertLinear(7, 3, num_experts=4)
    x = torch.randn(5, 7, requires_grad=True)
    with MultiplyAddCounter() as counter:
        experts.dense_mix(x, torch.rand(5, 4, requires_grad=True), "inside").sum().backward()
    # forward, weight gradient and input gradient: three (5, 7) x (7, 12) products, and the
    # gate mix and gate gradient: 5 (1, 4) x (4, 3) and 5 (4, 3) x (3, 1) products.
    assert counter.multiply_adds == 3 * 5 * 7 * 12 + 2 * 5 * 4 * 3
