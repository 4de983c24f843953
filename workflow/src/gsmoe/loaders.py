"""What the dataset loaders of :mod:`gsmoe.datasets` read, as torch-free facts.

Config validation checks a dataset against them before any job runs (a wrong ``pyg_name``
or a missing raw file is a config error, not a failure of the prepare job), and
:mod:`gsmoe.datasets` stages the raw files from the same names.
"""

from __future__ import annotations

__all__ = ["SOURCE_TASKS", "planetoid_raw_files", "tu_members"]

#: The task of each loader's data: Planetoid datasets are one graph with public node
#: masks, TU datasets many labelled graphs.  The keys are the loaders of gsmoe.datasets.
SOURCE_TASKS: dict[str, str] = {"planetoid": "node", "tu": "graph"}

# PyG's Planetoid reads these eight ``ind.<name>.<part>`` files; TUDataset needs these
# ``<name>_<part>.txt`` files of the archive (the others are optional).
_PLANETOID_PARTS = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
_TU_PARTS = ("A", "graph_indicator", "graph_labels")


def planetoid_raw_files(pyg_name: str) -> list[str]:
    """The raw file names PyG's Planetoid loader reads for ``pyg_name``."""
    return [f"ind.{pyg_name.lower()}.{part}" for part in _PLANETOID_PARTS]


def tu_members(pyg_name: str) -> list[str]:
    """The members (``<name>/<name>_<part>.txt``) of a TU zip archive that PyG's TUDataset needs."""
    return [f"{pyg_name}/{pyg_name}_{part}.txt" for part in _TU_PARTS]
