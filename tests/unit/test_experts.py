"""ExpertLinear: batched dense and sparse application == a loop over experts."""

from __future__ import annotations

import math

import pytest
import torch

from gsmoe.nn import ExpertLinear
from gsmoe.nn.experts import _gate_gradient, mix, size_classes
from gsmoe.nn.inputs import Parts, SparseFeatures, as_parts


def _loop_dense(experts: ExpertLinear, x: torch.Tensor) -> torch.Tensor:
    return torch.stack([x @ experts.weight[j] + experts.bias[j] for j in range(experts.num_experts)], 1)


def _loop_sparse(experts: ExpertLinear, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    rows = []
    for r in range(x.size(0)):
        rows.append(torch.stack([x[r] @ experts.weight[j] + experts.bias[j] for j in index[r].tolist()]))
    return torch.stack(rows) if rows else x.new_zeros(0, index.size(1), experts.out_channels)


def test_init_like_linear() -> None:
    torch.manual_seed(0)
    experts = ExpertLinear(50, 7, num_experts=6)
    bound = 1 / math.sqrt(50)
    assert experts.weight.shape == (6, 50, 7) and experts.bias.shape == (6, 7)
    assert experts.weight.abs().max() <= bound and experts.bias.abs().max() <= bound
    # Uniform on [-b, b] has std b / sqrt(3).
    assert experts.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)
    assert not torch.equal(experts.weight[0], experts.weight[1])
    assert str(experts) == "ExpertLinear(50, 7, num_experts=6)"


def test_dense_matches_loop_with_gradients() -> None:
    torch.manual_seed(0)
    experts = ExpertLinear(5, 3, num_experts=4)
    x = torch.randn(9, 5, requires_grad=True)
    out = experts.dense(x)
    expected = _loop_dense(experts, x)
    torch.testing.assert_close(out, expected)
    inputs = [x, experts.weight, experts.bias]
    g1 = torch.autograd.grad(out.pow(2).sum(), inputs)
    g2 = torch.autograd.grad(expected.pow(2).sum(), inputs)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    "index",
    [
        torch.tensor([[0, 1], [1, 2], [2, 3], [3, 0], [0, 2]]),  # balanced
        torch.tensor([[5, 0]] * 9 + [[1, 2], [3, 4]]),  # skewed: expert 5 and 0 take most rows
        torch.tensor([[7], [7], [7]]),  # one expert
        torch.randint(0, 8, (37, 3), generator=torch.Generator().manual_seed(1)),
    ],
    ids=["balanced", "skewed", "single", "random"],
)
def test_sparse_matches_loop_and_touches_only_selected(index: torch.Tensor) -> None:
    torch.manual_seed(0)
    experts = ExpertLinear(5, 3, num_experts=8)
    x = torch.randn(index.size(0), 5, requires_grad=True)
    out = experts.sparse(x, index)
    expected = _loop_sparse(experts, x, index)
    torch.testing.assert_close(out, expected)

    probe = torch.randn(out.shape, generator=torch.Generator().manual_seed(2))
    inputs = [x, experts.weight, experts.bias]
    g1 = torch.autograd.grad((out * probe).sum(), inputs)
    g2 = torch.autograd.grad((expected * probe).sum(), inputs)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)
    unused = torch.ones(8, dtype=torch.bool)
    unused[index.unique()] = False
    assert (g1[1][unused] == 0).all() and (g1[2][unused] == 0).all()


def test_select_matches_sparse_with_one_shared_selection() -> None:
    torch.manual_seed(0)
    experts = ExpertLinear(5, 3, num_experts=8)
    x = torch.randn(6, 5)
    chosen = torch.tensor([6, 1, 3])
    torch.testing.assert_close(experts.select(x, chosen), experts.sparse(x, chosen.expand(6, 3)))
    torch.testing.assert_close(experts.select(x, chosen), _loop_sparse(experts, x, chosen.expand(6, 3)))


def test_sparse_reads_rows_through_an_index() -> None:
    torch.manual_seed(0)
    experts = ExpertLinear(5, 3, num_experts=8)
    x = torch.randn(4, 5)
    rows = torch.tensor([3, 0, 3, 2, 1, 1])  # e.g. the sender of each edge
    index = torch.randint(0, 8, (6, 2), generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(experts.sparse(x, index, rows=rows), experts.sparse(x[rows], index))


def test_sparse_with_no_rows() -> None:
    experts = ExpertLinear(5, 3, num_experts=4)
    out = experts.sparse(torch.randn(0, 5), torch.zeros(0, 2, dtype=torch.long))
    assert out.shape == (0, 2, 3)


def test_sparse_uses_at_most_log2_batched_products(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = torch.baddbmm

    def counting(*args, **kwargs):
        calls.append(args[1].shape)
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, "baddbmm", counting)
    experts = ExpertLinear(4, 2, num_experts=16)
    counts = torch.tensor([1, 2, 3, 5, 9, 17, 33, 64, 100, 0, 0, 0, 0, 0, 0, 1])
    index = torch.repeat_interleave(torch.arange(16), counts).unsqueeze(1)
    experts.sparse(torch.randn(index.size(0), 4), index)
    assert len(calls) <= math.ceil(math.log2(index.numel())) + 1
    assert len(calls) < int((counts > 0).sum())  # fewer products than experts used
    padded = sum(shape[0] * shape[1] for shape in calls)
    assert padded < 2 * index.numel()


def test_size_classes() -> None:
    counts = torch.tensor([0, 1, 2, 3, 4, 5, 8, 9, 1000])
    assert size_classes(counts).tolist() == [0, 1, 2, 4, 4, 8, 8, 16, 1024]


@pytest.mark.parametrize("activation", ["inside", "outside"])
def test_mix(activation: str) -> None:
    y = torch.tensor([[[1.0, -2.0], [-3.0, 4.0]]])
    w = torch.tensor([[0.5, 0.5]])
    expected = {"inside": [[0.5, 2.0]], "outside": [[0.0, 1.0]]}[activation]
    torch.testing.assert_close(mix(y, w, activation), torch.tensor(expected))
    with pytest.raises(ValueError, match="activation must be 'inside' or 'outside'"):
        mix(y, w, "middle")


def test_bad_num_experts() -> None:
    with pytest.raises(ValueError, match="num_experts must be >= 1"):
        ExpertLinear(3, 2, num_experts=0)


def _plain_dense_mix(experts: ExpertLinear, x: Parts, weights: torch.Tensor, activation: str) -> torch.Tensor:
    return mix(experts.dense(x), weights, activation)


@pytest.mark.parametrize("num_experts", [1, 4, 16, 24])
@pytest.mark.parametrize("activation", ["inside", "outside"])
@pytest.mark.parametrize("layout", ["one part", "two parts", "sparse and dense"])
def test_dense_mix_equals_dense_then_mix_bit_for_bit(num_experts: int, activation: str, layout: str) -> None:
    """The fused node runs the same operations as the plain path: equal outputs and
    gradients (to the input parts, the weight, the bias and the gate), not just close."""
    generator = torch.Generator().manual_seed(num_experts)
    experts = ExpertLinear(13, 6, num_experts=num_experts)
    h = torch.randn(37, 8, generator=generator).requires_grad_()
    agg = torch.randn(37, 5, generator=generator).requires_grad_()
    raw = torch.randn(37, 8, generator=generator) * (torch.rand(37, 8, generator=generator) < 0.2)
    x = {"one part": torch.cat([h, agg], 1).detach().requires_grad_(), "two parts": (h, agg),
         "sparse and dense": (SparseFeatures(raw), agg)}[layout]  # fmt: skip
    logits = torch.randn(37, num_experts, generator=generator).requires_grad_()
    weights = torch.softmax(logits, -1)
    probe = torch.randn(37, 6, generator=generator)
    inputs = [t for t in as_parts(x) if isinstance(t, torch.Tensor)] + [experts.weight, experts.bias, logits]
    results = []
    for run in (experts.dense_mix, lambda *a: _plain_dense_mix(experts, *a)):
        out = run(x, weights, activation)
        results.append((out, torch.autograd.grad((out * probe).sum(), inputs, retain_graph=True)))
    (fused, fused_grads), (plain, plain_grads) = results
    assert torch.equal(fused, plain)
    for got, want in zip(fused_grads, plain_grads, strict=True):
        assert torch.equal(got, want)


@pytest.mark.parametrize("num_experts", [4, 8, 12, 16, 128])
def test_gate_gradient_cut_into_blocks_equals_one_batched_product(num_experts: int) -> None:
    generator = torch.Generator().manual_seed(0)
    terms = torch.randn(300, num_experts, 32, generator=generator)
    grad = torch.randn(300, 32, generator=generator)
    assert torch.equal(_gate_gradient(terms, grad), torch.bmm(terms, grad.unsqueeze(2)).squeeze(2))


def test_dense_mix_checks_its_input() -> None:
    experts = ExpertLinear(5, 3, num_experts=2)
    with pytest.raises(ValueError, match="input has 4 columns, experts expect 5"):
        experts.dense_mix(torch.randn(3, 4), torch.rand(3, 2), "inside")
    with pytest.raises(ValueError, match="activation must be 'inside' or 'outside'"):
        experts.dense_mix(torch.randn(3, 5), torch.rand(3, 2), "middle")
