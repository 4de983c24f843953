# GraphSAGE-MoE reproduction workflow.  Config keys: docs/config.md; module contract:
# docs/design.md.  Targets: all (default), tables, figures, dataset_<name> (e.g. dataset_Cora).
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/prepare.smk"
include: "workflow/rules/roles.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/claims.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
    message:
        "summary, tables, figures and claims"
