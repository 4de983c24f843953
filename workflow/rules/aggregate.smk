# Run records -> runs.csv (one row per run) and summary.csv (mean, std, CI per cell).
rule aggregate:
    input:
        runs=all_run_paths(),
    output:
        runs="results/runs.csv",
        summary=report(
            "results/summary.csv",
            caption="../report/summary.rst",
            category="Summary",
        ),
    log:
        "logs/aggregate/aggregate.log",
    benchmark:
        "benchmarks/aggregate/aggregate.tsv"
    localrule: True
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 10 * attempt,
    params:
        expected=RUNS,
        allow_missing=False,
        config=config,
    script:
        "../scripts/aggregate.py"
