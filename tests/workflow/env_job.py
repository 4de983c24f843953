"""Run one rule script's job outside Snakemake, with the interpreter that runs this file.

    python -I tests/workflow/env_job.py JOB.pickle

JOB.pickle holds, as plain Python objects, what Snakemake gave the job's script (input,
output, log, params, wildcards, threads, resources, config, rule, scriptdir) and the
script's path; tests/workflow/test_envs.py writes it from a job that Snakemake ran.  The
script then runs as under Snakemake, but in a process that imports only what this
interpreter has installed (and the checkout's gsmoe, which the script puts on sys.path
itself), not Snakemake's packages.  This file therefore needs the standard library only.
"""

import pickle
import runpy
import sys
from types import SimpleNamespace


class Namedlist(list):
    """The parts of Snakemake's Namedlist that rule scripts use: items, names, get."""

    def __init__(self, items: list, names: dict) -> None:
        super().__init__(items)
        self._names = dict(names)

    def __getattr__(self, name: str):
        try:
            return self.__dict__["_names"][name]
        except KeyError:
            raise AttributeError(name) from None

    def get(self, name: str, default=None):
        return self._names.get(name, default)


def main(job_path: str) -> None:
    with open(job_path, "rb") as handle:
        job = pickle.load(handle)
    lists = {key: Namedlist(*job[key]) for key in ("input", "output", "log", "params", "wildcards", "resources")}
    snakemake = SimpleNamespace(
        **lists, threads=job["threads"], config=job["config"], rule=job["rule"], scriptdir=job["scriptdir"]
    )
    runpy.run_path(job["script"], init_globals={"snakemake": snakemake}, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1])
