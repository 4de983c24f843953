"""The string options of the layers and the model, checked with one error format."""

from __future__ import annotations

from typing import Tuple


def check_choice(key: str, value: object, choices: Tuple[str, ...]) -> None:
    """Raise a ValueError naming ``key`` and its choices when ``value`` is not one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{key} must be one of {', '.join(map(repr, choices))}; got {value!r}")
