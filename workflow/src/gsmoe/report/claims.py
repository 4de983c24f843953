"""Do the paper's claims hold?  Claims from config, tested against ``runs.csv``.

A *claim* (``config["claims"]``, one entry per comparison) says how experiment ``a``
compares with experiment ``b``::

    - id: softmax_beats_nosoftmax
      table: table2
      text: Softmax gating beats gating without softmax
      compare: {a: moe4_softmax, b: moe4_nosoftmax}
      expect: greater                      # greater | less | equal | not_greater
      datasets: [Cora, PubMed, ENZYMES]    # optional; default below
      expect_per_dataset: {ENZYMES: less}  # optional; overrides `expect` per dataset
      group: table3_more_experts           # optional; claims sharing one sentence of the paper

A sentence with several comparisons (Table 3: "4/8/16 experts beat the baseline, more
experts help") is several claim entries sharing a ``group``: one comparison per entry
keeps the verdict of each readable and the config flat.

Every claim is evaluated per dataset x protocol.  Datasets: ``datasets`` if given, else
the keys of ``expect_per_dataset`` when there is no ``expect``, else every dataset of
``config["datasets"]`` (config order).  Protocols and the ``runs.csv`` column each reads
(:data:`PROTOCOL_METRICS`): ``paper`` -> ``paper_last`` (the authors' evaluation),
``standard`` -> ``standard_test`` (test accuracy at the best validation accuracy).

Statistics of one row (dataset x protocol), difference ``a - b`` of accuracies:

* **Paired** (the default): seeds present for both experiments are matched and
  :func:`gsmoe.report.stats.paired_difference` gives the mean difference, its Student-t
  interval at level ``1 - alpha`` and a two-sided sign-flip permutation p-value (exact up
  to 16 pairs).  Seeds run for only one of the two are left out and listed in ``note``.
* **Welch** when the two experiments share no seed: :func:`gsmoe.report.stats.welch`
  p-value, interval ``d ± t_{1-alpha/2, df} · sqrt(s_a²/n_a + s_b²/n_b)``.
* ``paper_diff`` is ``paper[a][dataset] - paper[b][dataset]`` from
  ``config["experiments"][<e>]["paper"]`` (NaN where the paper gives no value).

Verdict rules (``alpha = config.get("claims_alpha", 0.05)``; *significant* means
``p < alpha``; the direction is the sign of the mean difference):

=============  =====================================  ===========================================
expect         holds                                  does not hold
=============  =====================================  ===========================================
greater        significant and ``a > b``              significant and ``a < b``
less           significant and ``a < b``              significant and ``a > b``
equal          not significant                        significant (either direction)
not_greater    not significant, or significant        significant and ``a > b``
               and ``a < b``
=============  =====================================  ===========================================

Everything else is ``inconclusive`` (for greater/less: not significant).  Before that,
a row is

* ``not run`` when ``a`` or ``b`` has no run on that dataset in ``runs.csv`` (e.g. the
  smoke config runs only Cora and ENZYMES);
* ``inconclusive`` when there are fewer than 2 pairs (paired) or fewer than 2 runs on a
  side (Welch), or when the test *cannot* reach ``alpha`` at all: the exact sign-flip
  test's smallest two-sided p is ``2 / 2^n`` (0.5 for 2 pairs, 0.0625 for 5), and without
  this guard ``equal`` and ``not_greater`` would "hold" merely because too few seeds ran.

"equal holds" therefore means "no significant difference was found", not "shown to be
equal"; the interval column says how large a difference is still compatible with the
runs.  The verdict uses the p-value (not the t-interval), so near the boundary the
interval may just include or exclude 0 while the permutation test says the opposite.
As an extra, ``p_holm`` / ``verdict_holm`` apply Holm's step-down adjustment over the rows
of one protocol that reach a verdict from a p-value (each protocol is a separate family);
the main verdict is unadjusted.  Holm guards greater/less/does-not-hold verdicts against
chance findings; for ``equal`` / ``not_greater`` a larger p makes "holds" *easier*, so
read ``verdict_holm`` of those rows as the lenient reading, not the safe one.

Sanity check (``config["references"]``): per dataset, the mean accuracy of a plain
GraphSAGE run (``experiment``, default ``baseline``) under ``protocol`` (default
``standard``) against a published reference value; ``|ours - reference| > tolerance``
(default 0.10) is flagged.  References come from other papers with other protocols and
sometimes another model (each entry says which), so a flag asks for a look, not a verdict.

Entry point: :func:`write_claims` (``claims.md`` + ``claims.csv``, atomic).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as _sps

from gsmoe.io import atomic_open
from gsmoe.report.aggregate import RUN_COLUMNS, read_csv_keeping_names
from gsmoe.report.stats import EXACT_MAX_N, paired_difference, summary_stats, welch

__all__ = [
    "CLAIM_COLUMNS",
    "DEFAULT_ALPHA",
    "DEFAULT_TOLERANCE",
    "EXPECTATIONS",
    "PROTOCOL_METRICS",
    "REFERENCE_COLUMNS",
    "Claim",
    "check_references",
    "decide",
    "evaluate_claims",
    "holm",
    "min_attainable_p",
    "parse_claims",
    "render_markdown",
    "write_claims",
]

#: Protocol -> the ``runs.csv`` column it reads.
PROTOCOL_METRICS: dict[str, str] = {"paper": "paper_last", "standard": "standard_test"}

#: Allowed values of ``expect`` / ``expect_per_dataset``.
EXPECTATIONS: tuple[str, ...] = ("greater", "less", "equal", "not_greater")

DEFAULT_ALPHA = 0.05
DEFAULT_TOLERANCE = 0.10

HOLDS = "holds"
FAILS = "does not hold"
INCONCLUSIVE = "inconclusive"
NOT_RUN = "not run"

#: Columns of ``claims.csv``, in order.
CLAIM_COLUMNS: list[str] = [
    "claim",
    "group",
    "table",
    "text",
    "a",
    "b",
    "expect",
    "dataset",
    "protocol",
    "metric",
    "paper_a",
    "paper_b",
    "paper_diff",
    "mean_a",
    "mean_b",
    "diff",
    "ci_low",
    "ci_high",
    "confidence",
    "p_value",
    "p_holm",
    "test",
    "paired",
    "n",
    "n_a",
    "n_b",
    "verdict",
    "verdict_holm",
    "note",
]

#: Columns of the sanity table (:func:`check_references`).
REFERENCE_COLUMNS: list[str] = [
    "dataset",
    "experiment",
    "protocol",
    "metric",
    "n",
    "mean",
    "ci_low",
    "ci_high",
    "reference",
    "reference_model",
    "source",
    "difference",
    "tolerance",
    "flag",
    "note",
]

_RUN_KEY = ["dataset", "experiment", "seed"]


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class Claim:
    """One configured comparison ``a`` vs ``b`` (see the module docstring)."""

    id: str
    text: str
    a: str
    b: str
    table: str = ""
    group: str = ""
    expect: str | None = None
    datasets: tuple[str, ...] | None = None
    expect_per_dataset: Mapping[str, str] = field(default_factory=dict)

    def datasets_for(self, configured: Sequence[str]) -> list[str]:
        """Datasets this claim is evaluated on (explicit, per-dataset keys, or all configured)."""
        if self.datasets is not None:
            return list(self.datasets)
        if self.expect is None:
            return list(self.expect_per_dataset)
        return list(configured)

    def expectation(self, dataset: str) -> str:
        """What the claim expects on ``dataset``."""
        expect = self.expect_per_dataset.get(dataset, self.expect)
        if expect is None:
            raise ValueError(f"claim {self.id}: no expectation for dataset {dataset}")
        return expect


def _check_expect(value: Any, where: str) -> str:
    if value not in EXPECTATIONS:
        raise ValueError(f"{where}: expect must be one of {list(EXPECTATIONS)}, got {value!r}")
    return str(value)


def parse_claims(config: Mapping[str, Any]) -> list[Claim]:
    """``config["claims"]`` as validated :class:`Claim` objects (empty list if absent).

    Raises ``ValueError`` for a duplicated id, an unknown experiment or dataset name (when
    the config lists them), an unknown expectation, or a dataset without an expectation:
    a misspelt name must fail here rather than show up as a silent "not run".
    """
    experiments = config.get("experiments")
    configured = config.get("datasets")
    claims: list[Claim] = []
    seen: set[str] = set()
    for i, entry in enumerate(config.get("claims") or []):
        if not isinstance(entry, Mapping):
            raise ValueError(f"claims[{i}] must be a mapping, got {type(entry).__name__}")
        cid = str(entry.get("id") or "")
        where = f"claim {cid or f'#{i}'}"
        if not cid:
            raise ValueError(f"claims[{i}]: missing id")
        if cid in seen:
            raise ValueError(f"{where}: duplicated id")
        seen.add(cid)
        compare = entry.get("compare") or {}
        if not isinstance(compare, Mapping) or "a" not in compare or "b" not in compare:
            raise ValueError(f"{where}: compare must be {{a: <experiment>, b: <experiment>}}")
        a, b = str(compare["a"]), str(compare["b"])
        if a == b:
            raise ValueError(f"{where}: compares {a} with itself")
        if experiments is not None:
            for name in (a, b):
                if name not in experiments:
                    raise ValueError(f"{where}: unknown experiment {name!r}; known: {sorted(experiments)}")
        expect = entry.get("expect")
        if expect is not None:
            expect = _check_expect(expect, where)
        per_dataset = {
            str(d): _check_expect(v, f"{where}, {d}") for d, v in (entry.get("expect_per_dataset") or {}).items()
        }
        datasets = entry.get("datasets")
        if datasets is not None:
            datasets = tuple(str(d) for d in datasets)
            if not datasets:
                raise ValueError(f"{where}: datasets is empty")
        if expect is None and not per_dataset:
            raise ValueError(f"{where}: needs expect or expect_per_dataset")
        claim = Claim(
            id=cid,
            text=str(entry.get("text") or cid),
            a=a,
            b=b,
            table=str(entry.get("table") or ""),
            group=str(entry.get("group") or ""),
            expect=expect,
            datasets=datasets,
            expect_per_dataset=per_dataset,
        )
        names = set(claim.datasets_for(list(configured or []))) | set(per_dataset)
        if configured is not None:
            unknown = sorted(names - set(configured))
            if unknown:
                raise ValueError(f"{where}: unknown dataset(s) {unknown}; configured: {list(configured)}")
        for dataset in claim.datasets_for(list(configured or [])):
            claim.expectation(dataset)  # raises if a listed dataset has no expectation
        claims.append(claim)
    return claims


def _alpha(config: Mapping[str, Any]) -> float:
    alpha = float(config.get("claims_alpha", DEFAULT_ALPHA))
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"claims_alpha must be in (0, 1), got {alpha}")
    return alpha


def _paper_value(config: Mapping[str, Any], experiment: str, dataset: str) -> float:
    paper = ((config.get("experiments") or {}).get(experiment) or {}).get("paper") or {}
    value = paper.get(dataset)
    return float(value) if value is not None else math.nan


# --------------------------------------------------------------------------- statistics


def min_attainable_p(n_pairs: int, exact_max_n: int = EXACT_MAX_N) -> float:
    """Smallest two-sided p the sign-flip test can give with ``n_pairs`` pairs.

    Exact enumeration: the observed sign vector and its negation are always as extreme,
    so ``p >= 2 / 2^n`` (1 for one pair).  Monte Carlo (``n > exact_max_n``, 10,000
    resamples): ``1 / 10001``, far below any usual alpha.
    """
    if n_pairs < 1:
        return 1.0
    if n_pairs <= exact_max_n:
        return min(1.0, 2.0 / 2.0**n_pairs)
    return 1.0 / 10_001


def decide(expect: str, diff: float, p_value: float, alpha: float) -> str:
    """Verdict for one tested row (the table in the module docstring).

    ``diff`` is the mean of ``a - b``; ``p_value`` the two-sided p of "no difference".
    A NaN p gives ``inconclusive``.
    """
    _check_expect(expect, "decide")
    if not math.isfinite(p_value) or not math.isfinite(diff):
        return INCONCLUSIVE
    significant = p_value < alpha
    up = significant and diff > 0
    down = significant and diff < 0
    if expect == "greater":
        return HOLDS if up else FAILS if down else INCONCLUSIVE
    if expect == "less":
        return HOLDS if down else FAILS if up else INCONCLUSIVE
    if expect == "equal":
        return FAILS if significant else HOLDS
    # not_greater
    return FAILS if up else HOLDS


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values (same order as given; NaN stays NaN, not counted)."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, math.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = idx.size
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


@dataclass(frozen=True)
class _Diff:
    diff: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    p_value: float = math.nan
    test: str = ""
    paired: bool = False
    n: int = 0
    reason: str = ""  # why no verdict could be reached (empty if one can)
    notes: tuple[str, ...] = ()


def _welch_diff(va: np.ndarray, vb: np.ndarray, confidence: float) -> _Diff:
    se = math.sqrt(va.var(ddof=1) / va.size + vb.var(ddof=1) / vb.size)
    if se == 0.0:
        # Both groups constant (scipy would warn and give NaN): the interval is the point,
        # p is 1 for equal means and undefined otherwise -> inconclusive, stated as such.
        diff = float(va.mean() - vb.mean())
        p = 1.0 if diff == 0.0 else math.nan
        reason = "" if math.isfinite(p) else "both experiments have zero spread over seeds"
        return _Diff(diff, diff, diff, p, "Welch t-test", False, 0, reason)
    w = welch(va, vb)
    half = float(_sps.t.ppf(0.5 + confidence / 2.0, w.df)) * se
    return _Diff(w.mean_diff, w.mean_diff - half, w.mean_diff + half, w.p_value, "Welch t-test", False, 0)


def _compare(a: Mapping[int, float], b: Mapping[int, float], alpha: float) -> _Diff:
    """Paired difference on the common seeds, Welch if none in common (module docstring)."""
    confidence = 1.0 - alpha
    common = sorted(set(a) & set(b))
    notes: list[str] = []
    if common:
        unmatched_a, unmatched_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        if unmatched_a or unmatched_b:
            notes.append(f"paired on {len(common)} common seeds; unmatched seeds a: {unmatched_a}, b: {unmatched_b}")
        if len(common) < 2:
            return _Diff(n=len(common), paired=True, reason=f"n too small ({len(common)} pair)", notes=tuple(notes))
        r = paired_difference({s: a[s] for s in common}, {s: b[s] for s in common}, confidence)
        reason = ""
        floor = min_attainable_p(r.n)
        if floor >= alpha:
            reason = f"n too small: with {r.n} pairs the smallest attainable p is {floor:.3g} >= alpha {alpha:g}"
        return _Diff(r.mean, r.ci_low, r.ci_high, r.p_value, r.test, True, r.n, reason, tuple(notes))
    va, vb = np.array(list(a.values()), float), np.array(list(b.values()), float)
    notes.append("no seed in common: unpaired Welch test")
    if va.size < 2 or vb.size < 2:
        return _Diff(reason=f"n too small ({va.size} and {vb.size} runs, unpaired)", notes=tuple(notes))
    d = _welch_diff(va, vb, confidence)
    return _Diff(d.diff, d.ci_low, d.ci_high, d.p_value, d.test, False, 0, d.reason, tuple(notes))


# --------------------------------------------------------------------------- evaluation


def _check_runs(runs: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in _RUN_KEY + list(PROTOCOL_METRICS.values()) if c not in runs.columns]
    if missing:
        raise ValueError(f"runs table lacks column(s) {missing}")
    runs = runs.copy()
    runs["dataset"] = runs["dataset"].astype(str)
    runs["experiment"] = runs["experiment"].astype(str)
    runs["seed"] = runs["seed"].astype("int64")
    dup = runs[runs.duplicated(_RUN_KEY, keep=False)]
    if not dup.empty:
        first = dup.iloc[0]
        raise ValueError(f"run {first['dataset']}/{first['experiment']}/seed{first['seed']} appears more than once")
    return runs


def _values(runs: pd.DataFrame, dataset: str, experiment: str, metric: str) -> dict[int, float]:
    sel = runs[(runs["dataset"] == dataset) & (runs["experiment"] == experiment)]
    values = {int(s): float(v) for s, v in zip(sel["seed"], sel[metric])}
    bad = [s for s, v in values.items() if not math.isfinite(v)]
    if bad:
        raise ValueError(f"{dataset}/{experiment}: {metric} is not finite for seed(s) {sorted(bad)}")
    return values


def _configured_datasets(config: Mapping[str, Any], runs: pd.DataFrame) -> list[str]:
    if config.get("datasets") is not None:
        return [str(d) for d in config["datasets"]]
    return sorted(runs["dataset"].unique().tolist())


def evaluate_claims(runs: pd.DataFrame, config: Mapping[str, Any]) -> pd.DataFrame:
    """One row per claim x dataset x protocol with the columns :data:`CLAIM_COLUMNS`.

    Args:
        runs: ``runs.csv`` as a frame (at least dataset, experiment, seed, paper_last,
            standard_test).
        config: the workflow config (``claims``, ``claims_alpha``, ``experiments``,
            ``datasets``).
    """
    runs = _check_runs(runs)
    alpha = _alpha(config)
    claims = parse_claims(config)
    configured = _configured_datasets(config, runs)
    rows: list[dict[str, Any]] = []
    testable: list[bool] = []  # a verdict was reached from a p-value (Holm may change it)
    for claim in claims:
        for dataset in claim.datasets_for(configured):
            expect = claim.expectation(dataset)
            paper_a, paper_b = _paper_value(config, claim.a, dataset), _paper_value(config, claim.b, dataset)
            for protocol, metric in PROTOCOL_METRICS.items():
                va = _values(runs, dataset, claim.a, metric)
                vb = _values(runs, dataset, claim.b, metric)
                row: dict[str, Any] = {
                    "claim": claim.id,
                    "group": claim.group,
                    "table": claim.table,
                    "text": claim.text,
                    "a": claim.a,
                    "b": claim.b,
                    "expect": expect,
                    "dataset": dataset,
                    "protocol": protocol,
                    "metric": metric,
                    "paper_a": paper_a,
                    "paper_b": paper_b,
                    "paper_diff": paper_a - paper_b,
                    "mean_a": float(np.mean(list(va.values()))) if va else math.nan,
                    "mean_b": float(np.mean(list(vb.values()))) if vb else math.nan,
                    "confidence": 1.0 - alpha,
                    "n_a": len(va),
                    "n_b": len(vb),
                    "test": "",
                    "paired": False,
                    "note": "",
                }
                if not va or not vb:
                    absent = [e for e, v in ((claim.a, va), (claim.b, vb)) if not v]
                    row.update(verdict=NOT_RUN, note=f"no runs of {' and '.join(absent)} on {dataset}")
                    rows.append(row)
                    testable.append(False)
                    continue
                d = _compare(va, vb, alpha)
                row.update(
                    diff=d.diff,
                    ci_low=d.ci_low,
                    ci_high=d.ci_high,
                    p_value=d.p_value,
                    test=d.test,
                    paired=d.paired,
                    n=d.n if d.paired else math.nan,
                    verdict=INCONCLUSIVE if d.reason else decide(expect, d.diff, d.p_value, alpha),
                    note="; ".join([*([d.reason] if d.reason else []), *d.notes]),
                )
                rows.append(row)
                testable.append(not d.reason)
    frame = pd.DataFrame(rows, columns=CLAIM_COLUMNS)
    frame = frame.astype({"paired": bool, "note": str, "test": str, "verdict": str})
    _add_holm(frame, alpha, testable)
    return frame


def _add_holm(frame: pd.DataFrame, alpha: float, testable: Sequence[bool]) -> None:
    """Fill ``p_holm`` / ``verdict_holm`` in place: one Holm family per protocol.

    Rows that are not ``testable`` (not run, too few seeds, undefined p) keep their verdict.
    """
    frame["p_holm"] = math.nan
    frame["verdict_holm"] = frame["verdict"]
    # Only rows that can reach a verdict form the family (a test that cannot reject adds nothing).
    p = frame["p_value"].where(pd.Series(list(testable), index=frame.index, dtype=bool))
    for _, idx in frame.groupby("protocol", sort=False).groups.items():
        frame.loc[idx, "p_holm"] = holm(p.loc[idx].to_numpy(dtype=float))
    for i, ok in zip(frame.index, testable):
        if ok and math.isfinite(frame.at[i, "p_holm"]):
            frame.at[i, "verdict_holm"] = decide(
                frame.at[i, "expect"], frame.at[i, "diff"], frame.at[i, "p_holm"], alpha
            )


def check_references(runs: pd.DataFrame, config: Mapping[str, Any]) -> pd.DataFrame:
    """Our plain-GraphSAGE accuracy per dataset against ``config["references"]``.

    One row per reference (columns :data:`REFERENCE_COLUMNS`); ``flag`` is True when
    ``|mean - reference| > tolerance``; no runs -> ``n`` 0, no flag, a note.
    """
    runs = _check_runs(runs)
    confidence = 1.0 - _alpha(config)
    rows = []
    for dataset, ref in (config.get("references") or {}).items():
        experiment = str(ref.get("experiment", "baseline"))
        protocol = str(ref.get("protocol", "standard"))
        if protocol not in PROTOCOL_METRICS:
            raise ValueError(f"references.{dataset}: unknown protocol {protocol!r}; known: {list(PROTOCOL_METRICS)}")
        metric = PROTOCOL_METRICS[protocol]
        tolerance = float(ref.get("tolerance", DEFAULT_TOLERANCE))
        value = float(ref["value"])
        values = _values(runs, str(dataset), experiment, metric)
        row: dict[str, Any] = {
            "dataset": dataset,
            "experiment": experiment,
            "protocol": protocol,
            "metric": metric,
            "n": len(values),
            "reference": value,
            "reference_model": str(ref.get("model", "")),
            "source": str(ref.get("source", "")),
            "tolerance": tolerance,
            "flag": False,
            "note": str(ref.get("note", "")),
        }
        if values:
            s = summary_stats(list(values.values()), confidence)
            diff = s.mean - value
            flag = abs(diff) > tolerance
            row.update(mean=s.mean, ci_low=s.ci_low, ci_high=s.ci_high, difference=diff, flag=flag)
            if flag:
                side = "below" if diff < 0 else "above"
                row["note"] = "; ".join(
                    x
                    for x in (
                        f"far from the reference: {abs(diff):.3f} {side} (tolerance {tolerance:.2f})",
                        row["note"],
                    )
                    if x
                )
        else:
            row["note"] = "; ".join(x for x in (f"no runs of {experiment} on {dataset}", row["note"]) if x)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=REFERENCE_COLUMNS)
    frame["flag"] = frame["flag"].astype(bool)
    return frame


# --------------------------------------------------------------------------- output


def _md(text: Any) -> str:
    """Plain text safe inside a markdown table cell."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _num(x: float, signed: bool = False) -> str:
    if x is None or not math.isfinite(float(x)):
        return "--"
    return f"{float(x):+.3f}" if signed else f"{float(x):.3f}"


def _p(x: float) -> str:
    if x is None or not math.isfinite(float(x)):
        return "--"
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def _n(row: Mapping[str, Any]) -> str:
    if row["paired"]:
        return str(int(row["n"]))
    return f"{int(row['n_a'])}/{int(row['n_b'])}"


_EXPECT_TEXT = {
    "greater": "a > b",
    "less": "a < b",
    "equal": "a = b (no significant difference)",
    "not_greater": "a not > b",
}


def _summary_lines(claims_df: pd.DataFrame, conf: str) -> list[str]:
    """One row per claim and dataset, the protocols side by side (paper first)."""
    protocols = list(dict.fromkeys(claims_df["protocol"]))
    header = "| claim | dataset | paper diff | " + " | ".join(
        f"ours, {p} protocol [{conf} CI] | p | verdict" for p in protocols
    )
    lines = [header + " |", "|---|---|---:|" + "---:|---:|---|" * len(protocols)]
    for (_, dataset), group in claims_df.groupby(["claim", "dataset"], sort=False):
        by_protocol = {r["protocol"]: r for _, r in group.iterrows()}
        first = group.iloc[0]
        cells = [_md(first["text"]), _md(dataset), _num(first["paper_diff"], True)]
        for protocol in protocols:
            r = by_protocol.get(protocol)
            if r is None or r["verdict"] == NOT_RUN:
                cells += ["--", "--", NOT_RUN]
            else:
                cells += [
                    f"{_num(r['diff'], True)} [{_num(r['ci_low'], True)}, {_num(r['ci_high'], True)}]",
                    _p(r["p_value"]),
                    r["verdict"],
                ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_markdown(claims_df: pd.DataFrame, refs_df: pd.DataFrame, claims: Sequence[Claim], alpha: float) -> str:
    """``claims.md``: the rules, a summary, the claims, the results table and the sanity section."""
    conf = f"{100 * (1 - alpha):g} %"
    lines = [
        "# Do the paper's claims hold?",
        "",
        "<!-- Generated by gsmoe.report.claims from runs.csv -- do not edit by hand. -->",
        "",
        f"Difference = accuracy of a minus accuracy of b, per dataset and protocol (paper: `paper_last`, "
        f"standard: `standard_test`), paired by seed (sign-flip permutation test, {conf} t-interval) or, "
        f"with no seed in common, Welch's t-test. alpha = {alpha:g}, no multiple-comparison correction in "
        "*verdict* (Holm's adjustment per protocol in *Holm*).",
        "",
        "Verdicts: greater/less **holds** when significant in the claimed direction and **does not hold** when "
        "significant in the opposite one; equal **holds** when not significant (no difference found, which is not "
        "proof of equality: see the interval) and does not hold when significant; not_greater **does not hold** "
        "only when a is significantly greater. Otherwise **inconclusive**, also when too few seeds ran for the "
        "test to reach alpha; **not run** when an experiment has no runs on the dataset.",
        "",
        "## Summary",
        "",
        *_summary_lines(claims_df, conf),
        "",
        "## Claims",
        "",
        "| claim | table | a | b | expects | paper's claim |",
        "|---|---|---|---|---|---|",
    ]
    for c in claims:
        expects = _EXPECT_TEXT[c.expect] if c.expect else ""
        if c.expect_per_dataset:
            per = ", ".join(f"{d}: {_EXPECT_TEXT[e]}" for d, e in c.expect_per_dataset.items())
            expects = f"{expects}; {per}" if expects else per
        lines.append(f"| {_md(c.id)} | {_md(c.table)} | {_md(c.a)} | {_md(c.b)} | {_md(expects)} | {_md(c.text)} |")
    lines += [
        "",
        "## Results",
        "",
        f"| claim | table | dataset | protocol | expect | paper diff | our diff [{conf} CI] | p | p (Holm) | n | verdict | verdict (Holm) | note |",
        "|---|---|---|---|---|---:|---|---:|---:|---:|---|---|---|",
    ]
    for _, r in claims_df.iterrows():
        if r["verdict"] == NOT_RUN:
            ours, n = "--", "0"
        else:
            ours = f"{_num(r['diff'], True)} [{_num(r['ci_low'], True)}, {_num(r['ci_high'], True)}]"
            n = _n(r)
        lines.append(
            f"| {_md(r['claim'])} | {_md(r['table'])} | {_md(r['dataset'])} | {r['protocol']} | {r['expect']} | "
            f"{_num(r['paper_diff'], True)} | {ours} | {_p(r['p_value'])} | {_p(r['p_holm'])} | {n} | "
            f"{r['verdict']} | {r['verdict_holm']} | {_md(r['note'])} |"
        )
    counts = claims_df.groupby(["protocol", "verdict"], sort=False).size()
    lines += ["", "Tally: " + "; ".join(f"{p} {v}: {k}" for (p, v), k in counts.items()) if len(counts) else "", ""]
    lines += [
        "## Sanity check: our baseline against published accuracies",
        "",
    ]
    if refs_df.empty:
        lines.append("No references configured.")
    else:
        lines += [
            f"| dataset | ours (experiment, protocol) | mean [{conf} CI] | n | reference | model | ours - ref | flag | source | note |",
            "|---|---|---|---:|---:|---|---:|---|---|---|",
        ]
        for _, r in refs_df.iterrows():
            ci = f"{_num(r['mean'])} [{_num(r['ci_low'])}, {_num(r['ci_high'])}]" if r["n"] else "--"
            flag = "**far**" if r["flag"] else ("--" if not r["n"] else "ok")
            lines.append(
                f"| {_md(r['dataset'])} | {_md(r['experiment'])}, {r['protocol']} | {ci} | {int(r['n'])} | "
                f"{_num(r['reference'])} | {_md(r['reference_model'])} | {_num(r['difference'], True)} | {flag} | "
                f"{_md(r['source'])} | {_md(r['note'])} |"
            )
        lines += [
            "",
            "References use other protocols (and, where the model column says so, another model); a flag asks for a "
            "look at the training setup, it is not a verdict.",
        ]
    return "\n".join(lines).rstrip("\n") + "\n"


def write_claims(runs_csv: str, config: dict, out_md: str, out_csv: str) -> None:
    """Evaluate ``config["claims"]`` and ``config["references"]`` on ``runs_csv``.

    Writes ``out_md`` (readable report) and ``out_csv`` (one row per claim x dataset x
    protocol, :data:`CLAIM_COLUMNS`; NaN as an empty cell), both atomically.
    """
    runs = read_csv_keeping_names(runs_csv, RUN_COLUMNS, ("dataset", "experiment", "device"))
    alpha = _alpha(config)
    claims_df = evaluate_claims(runs, config)
    refs_df = check_references(runs, config)
    text = render_markdown(claims_df, refs_df, parse_claims(config), alpha)
    with atomic_open(out_csv, "w", encoding="utf-8", newline="") as handle:
        claims_df.to_csv(handle, index=False, na_rep="", lineterminator="\n", float_format="%.6g")
    with atomic_open(out_md, "w", encoding="utf-8") as handle:
        handle.write(text)
