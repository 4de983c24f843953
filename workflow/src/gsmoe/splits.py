"""Seeded, stratified splits for graph classification (ENZYMES).

ENZYMES is stored sorted by class (100 graphs of class 5, then of class 3, ...), so a
split that is not shuffled, or shuffled without stratification, gives parts with skewed
or missing classes.  Splits here are shuffled within each class by a generator seeded
explicitly, so a split depends on nothing but ``(labels, fractions, seed)``, and each part
holds every class in the requested proportion.

Node classification (Cora, PubMed) uses the Planetoid public split stored in the dataset's
masks, not this module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["graph_splits", "stratified_split"]


def _largest_remainder(n: int, fractions: Sequence[float]) -> list[int]:
    """Integer part sizes summing to ``n``, as close to ``n * fractions`` as possible.

    Quotas are rounded to 9 decimals first so that float noise (``0.29 * 100 =
    28.999999999999996``) does not decide a tie.  Ties go to the earlier part.
    """
    quotas = [round(f * n, 9) for f in fractions]
    sizes = [math.floor(q) for q in quotas]
    order = sorted(range(len(quotas)), key=lambda k: (-(quotas[k] - sizes[k]), k))
    for k in order[: n - sum(sizes)]:
        sizes[k] += 1
    return sizes


def stratified_split(labels: Tensor, fractions: Sequence[float], seed: int) -> list[Tensor]:
    """Split ``range(len(labels))`` into parts of the given fractions, class by class.

    Each class's indices are shuffled with one ``torch.Generator`` seeded with ``seed``
    (classes in ascending order) and cut into parts sized by the largest-remainder
    method, so every class is split in the given proportions and the part sizes sum to
    the class size.

    Returns:
        One sorted ``int64`` index tensor per fraction; together they cover every index
        exactly once.
    """
    if labels.dim() != 1 or labels.dtype.is_floating_point:
        raise ValueError(f"labels must be a 1-D integer tensor, got {labels.dtype} of shape {tuple(labels.shape)}")
    if not fractions or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions must be non-negative and sum to 1, got {list(fractions)}")
    generator = torch.Generator().manual_seed(seed)
    parts: list[list[Tensor]] = [[] for _ in fractions]
    for cls in torch.unique(labels).tolist():  # sorted
        members = (labels == cls).nonzero().view(-1)
        members = members[torch.randperm(members.numel(), generator=generator)]
        for part, chunk in zip(parts, torch.split(members, _largest_remainder(members.numel(), fractions))):
            part.append(chunk)
    return [torch.sort(torch.cat(chunks)).values for chunks in parts]


def graph_splits(
    labels: Tensor, seed: int, standard: Sequence[float] = (0.8, 0.1, 0.1)
) -> dict[str, Tensor]:
    """Splits for both evaluation protocols of a graph-classification run.

    ``train``/``val``/``test`` are the standard stratified split.  The paper's protocol
    trains on 80 % and reports accuracy on the other 20 %: its ``heldout`` part is
    ``val ∪ test``, so both protocols train on the very same graphs and differ only in
    how they evaluate.
    """
    if len(standard) != 3:
        raise ValueError(f"standard must be (train, val, test) fractions, got {list(standard)}")
    train, val, test = stratified_split(labels, standard, seed)
    for name, part in (("train", train), ("val", val), ("test", test)):
        if part.numel() == 0:  # an accuracy over no graphs is no number
            raise ValueError(
                f"split fractions {list(standard)} leave the {name} part of {labels.numel()} graphs empty; "
                "raise its fraction in datasets.<dataset>.split.standard"
            )
    heldout = torch.sort(torch.cat([val, test])).values
    return {"train": train, "val": val, "test": test, "heldout": heldout}
