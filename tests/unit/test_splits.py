"""Stratified graph splits: proportions per class, determinism, disjoint cover."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

from gsmoe.splits import graph_splits, stratified_split

ENZYMES_ZIP = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "tu" / "ENZYMES.zip"


def _sorted_by_class(per_class: list[int]) -> torch.Tensor:
    """Labels stored class by class, as ENZYMES is."""
    return torch.cat([torch.full((n,), c) for c, n in enumerate(per_class)])


def _assert_partition(parts: list[torch.Tensor], n: int) -> None:
    allidx = torch.cat(parts)
    assert allidx.numel() == n
    assert torch.equal(torch.sort(allidx).values, torch.arange(n))
    for p in parts:
        assert p.dtype == torch.int64 and torch.equal(p, torch.sort(p).values)


def test_enzymes_like_exact_proportions() -> None:
    labels = _sorted_by_class([100] * 6)
    train, val, test = stratified_split(labels, (0.8, 0.1, 0.1), seed=0)
    _assert_partition([train, val, test], 600)
    assert labels[train].bincount().tolist() == [80] * 6
    assert labels[val].bincount().tolist() == [10] * 6
    assert labels[test].bincount().tolist() == [10] * 6


def test_largest_remainder_per_class() -> None:
    labels = _sorted_by_class([7, 3, 11, 1])
    parts = stratified_split(labels, (0.5, 0.3, 0.2), seed=3)
    _assert_partition(parts, 22)
    counts = [[int((labels[p] == c).sum()) for p in parts] for c in range(4)]
    # 7 -> 3.5/2.1/1.4 ; 3 -> 1.5/0.9/0.6 ; 11 -> 5.5/3.3/2.2 ; 1 -> 0.5/0.3/0.2
    assert counts == [[4, 2, 1], [1, 1, 1], [6, 3, 2], [1, 0, 0]]


def test_float_noise_does_not_decide() -> None:
    labels = torch.zeros(100, dtype=torch.long)
    sizes = [p.numel() for p in stratified_split(labels, (0.29, 0.71), seed=0)]
    assert sizes == [29, 71]


def test_deterministic_and_seed_dependent() -> None:
    labels = _sorted_by_class([50, 50, 50])
    a = stratified_split(labels, (0.8, 0.2), seed=7)
    b = stratified_split(labels, (0.8, 0.2), seed=7)
    c = stratified_split(labels, (0.8, 0.2), seed=8)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[1], c[1])
    # Shuffled: the held-out part is not just the last graphs of each class.
    assert not torch.equal(a[1], torch.cat([torch.arange(40, 50), torch.arange(90, 100), torch.arange(140, 150)]))


def test_independent_of_global_rng() -> None:
    labels = _sorted_by_class([20, 20])
    torch.manual_seed(1)
    a = stratified_split(labels, (0.5, 0.5), seed=0)
    torch.manual_seed(2)
    b = stratified_split(labels, (0.5, 0.5), seed=0)
    assert torch.equal(a[0], b[0])


@pytest.mark.parametrize(
    ("labels", "fractions"),
    [
        (torch.zeros(4, dtype=torch.long), (0.5, 0.4)),
        (torch.zeros(4, dtype=torch.long), (1.2, -0.2)),
        (torch.zeros(4), (0.5, 0.5)),
        (torch.zeros(2, 2, dtype=torch.long), (0.5, 0.5)),
    ],
)
def test_bad_arguments(labels: torch.Tensor, fractions: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="labels|fractions"):
        stratified_split(labels, fractions, seed=0)


def test_graph_splits_protocols_share_train() -> None:
    labels = _sorted_by_class([100] * 6)
    s = graph_splits(labels, seed=0)
    assert set(s) == {"train", "val", "test", "heldout"}
    _assert_partition([s["train"], s["val"], s["test"]], 600)
    _assert_partition([s["train"], s["heldout"]], 600)
    assert torch.equal(s["heldout"], torch.sort(torch.cat([s["val"], s["test"]])).values)
    assert labels[s["heldout"]].bincount().tolist() == [20] * 6
    with pytest.raises(ValueError, match="standard"):
        graph_splits(labels, seed=0, standard=(0.8, 0.2))


@pytest.mark.skipif(not ENZYMES_ZIP.is_file(), reason="local dataset mirror not available")
def test_real_enzymes_labels_stratified() -> None:
    with zipfile.ZipFile(ENZYMES_ZIP) as zf:
        labels = torch.tensor([int(v) - 1 for v in zf.read("ENZYMES/ENZYMES_graph_labels.txt").split()])
    assert labels.numel() == 600 and labels[:100].unique().numel() == 1  # stored class by class
    s = graph_splits(labels, seed=0)
    for part, share in (("train", 80), ("val", 10), ("test", 10), ("heldout", 20)):
        assert labels[s[part]].bincount(minlength=6).tolist() == [share] * 6
