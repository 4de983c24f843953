# Run records -> runs.csv (one row per run) and summary.csv (mean, std, CI per cell).
rule aggregate:
    input:
        runs=all_run_paths(),
    output:
        runs="results/runs.csv",
        # in the report as summary.html (its job parameters list only what that page reads)
        summary="results/summary.csv",
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
    message:
        f"aggregate {len(RUNS)} run records -> {{output.runs}}, {{output.summary}}"
    script:
        "../scripts/aggregate.py"


# summary.csv -> every experiment on every dataset, both protocols, as an HTML page
# (ours with n and 95 % interval, the paper's value beside it), shown in the report.
rule summary_html:
    input:
        "results/summary.csv",
    output:
        report(
            "results/summary.html",
            caption="../report/summary.rst",
            category="Summary",
        ),
    log:
        "logs/aggregate/summary_html.log",
    benchmark:
        "benchmarks/aggregate/summary_html.tsv"
    localrule: True
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 1000 * attempt,
        runtime=lambda wildcards, attempt: 10 * attempt,
    params:
        labels=lambda wildcards: experiment_labels(),
        datasets=lambda wildcards: list(run_datasets(config)),
        protocols=lambda wildcards: protocols_text(),
    message:
        "summary as HTML for the report, both protocols -> {output}"
    script:
        "../scripts/summary_html.py"
