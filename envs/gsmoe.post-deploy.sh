#!/usr/bin/env bash
# Snakemake runs this once, inside the freshly created envs/gsmoe.yaml environment.
# graphrole 1.1.1 declares pandas<2, which cannot work with numpy 2; it runs fine on the
# pinned pandas, so it is installed without its declared dependencies (as in the Makefile).
set -euo pipefail
python -m pip install --no-deps graphrole==1.1.1
