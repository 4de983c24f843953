"""GraphSAGE-MoE: GraphSAGE with Mixture-of-Experts layers.

A reproduction package for "GraphSAGE-MoE" (Zhou and Luo): the model layers, the
training/evaluation protocols, GraphRole role extraction and the aggregation into the
paper's tables and figures.  The Snakemake workflow in ``workflow/`` only calls into it.
"""

__version__ = "0.1.0"

from pathlib import Path

#: The config schema: every key of config.yaml, its checks and its default (docs/config.md).
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"
