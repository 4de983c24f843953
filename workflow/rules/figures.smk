# Run records -> accuracy curves (Figures 2 and 3), one job per figure.
rule figure:
    input:
        lambda wildcards: figure_run_paths(wildcards.figure),
    output:
        pdf=report(
            "results/figures/{figure}.pdf",
            caption="../report/figure.rst",
            category="Figures",
            labels=lambda wildcards: {
                "figure": config["figures"][wildcards.figure]["title"],
                "format": "vector PDF",
            },
        ),
        png=report(
            "results/figures/{figure}.png",
            caption="../report/figure.rst",
            category="Figures",
            labels=lambda wildcards: {
                "figure": config["figures"][wildcards.figure]["title"],
                "format": "PNG",
            },
        ),
    log:
        "logs/figures/{figure}.log",
    benchmark:
        "benchmarks/figures/{figure}.tsv"
    localrule: True
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 10 * attempt,
    params:
        figure=lambda wildcards: config["figures"][wildcards.figure],
        labels=lambda wildcards: {
            e: experiment_labels()[e]
            for e in config["figures"][wildcards.figure]["experiments"]
        },
        config=config,
    script:
        "../scripts/figures.py"


# Target rule: `snakemake --cores all figures`.
rule figures:
    input:
        figure_paths(),
    localrule: True
