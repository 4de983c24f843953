"""The ``claims`` section of the config: each claim as a :class:`Claim`, and its checks.

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

Datasets a claim is evaluated on: ``datasets`` if given, else the keys of
``expect_per_dataset`` when there is no ``expect``, else every dataset of
``config["datasets"]`` (config order).  The schema checks each entry's form;
:func:`claims_errors` what it cannot (names of experiments and datasets, one expectation
per evaluated dataset).  How a claim is tested: :mod:`gsmoe.report.verdicts`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Claim", "claims_errors", "parse_claims"]


@dataclass(frozen=True)
class Claim:
    """One configured comparison ``a`` vs ``b`` (see the module docstring)."""

    id: str
    text: str
    a: str
    b: str
    table: str
    group: str
    expect: str | None
    datasets: tuple[str, ...] | None
    expect_per_dataset: Mapping[str, str]

    def datasets_for(self, configured: Sequence[str]) -> list[str]:
        """Datasets this claim is evaluated on (explicit, per-dataset keys, or all configured)."""
        if self.datasets is not None:
            return list(self.datasets)
        if self.expect is None:
            return list(self.expect_per_dataset)
        return list(configured)

    def expectation(self, dataset: str) -> str | None:
        """What the claim expects on ``dataset`` (None: nothing, a config error)."""
        return self.expect_per_dataset.get(dataset, self.expect)


def parse_claims(config: Mapping[str, Any]) -> list[Claim]:
    """``config["claims"]`` of a validated config as :class:`Claim` objects."""
    return [
        Claim(
            id=entry["id"],
            text=entry["text"],
            a=entry["compare"]["a"],
            b=entry["compare"]["b"],
            table=entry["table"],
            group=entry["group"],
            expect=entry.get("expect"),  # no default: absent = expect_per_dataset only
            datasets=None if entry["datasets"] is None else tuple(entry["datasets"]),
            expect_per_dataset=dict(entry["expect_per_dataset"]),
        )
        for entry in config["claims"]
    ]


def claims_errors(config: Mapping[str, Any]) -> list[str]:
    """What the schema cannot check of ``claims`` (defaults filled): unique ids, two different
    known experiments, known datasets, an expectation for every evaluated dataset.  A
    misspelt name must fail here rather than show up as a silent "not run" at the end."""
    experiments, configured = config["experiments"], list(config["datasets"])
    errors: list[str] = []
    seen: set[str] = set()
    for i, claim in enumerate(parse_claims(config)):
        where, which = f"config: claims[{i}]", f"claim {claim.id!r}"
        if claim.id in seen:
            errors.append(f"{where}.id: {which} is already the id of an earlier claim; give each claim its own id.")
        seen.add(claim.id)
        if claim.a == claim.b:
            errors.append(f"{where}.compare: {which} compares {claim.a!r} with itself; name two experiments.")
        for side, name in (("a", claim.a), ("b", claim.b)):
            if name not in experiments:
                errors.append(
                    f"{where}.compare.{side}: {which} names unknown experiment {name!r}; "
                    f"use one of {', '.join(experiments)}."
                )
        named = [("datasets", d) for d in claim.datasets or ()] + [
            ("expect_per_dataset", d) for d in claim.expect_per_dataset
        ]
        for key, dataset in named:
            if dataset not in configured:
                errors.append(
                    f"{where}.{key}: {which} names unknown dataset {dataset!r}; use one of {', '.join(configured)}."
                )
        for dataset in claim.datasets_for(configured):
            if claim.expectation(dataset) is None:
                errors.append(
                    f"{where}: {which} has no expectation for dataset {dataset!r}; set expect or add "
                    f"{dataset} to expect_per_dataset."
                )
    return errors
