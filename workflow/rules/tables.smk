# summary.csv -> the paper's Tables 1-5 as LaTeX (configured metric, and the standard
# protocol under standard/), plus tables.tex / tables_standard.tex that \input them, and
# summary.md (every experiment on the datasets of the tables' columns, both protocols, Markdown).
# Also a target rule: `snakemake --cores all tables`.
rule tables:
    input:
        "results/summary.csv",
    output:
        tables=[
            report(
                f"results/tables/{table}.tex",
                caption="../report/table.rst",
                category="Tables",
                labels={"table": table, "protocol": "configured"},
            )
            for table in TABLES
        ],
        standard=[f"results/tables/standard/{table}.tex" for table in TABLES],
        index="results/tables/tables.tex",
        index_standard="results/tables/tables_standard.tex",
        markdown="results/tables/summary.md",
    log:
        "logs/tables/tables.log",
    benchmark:
        "benchmarks/tables/tables.tsv"
    localrule: True
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 1000 * attempt,
        runtime=lambda wildcards, attempt: 10 * attempt,
    params:
        config=lambda wildcards: {
            key: config[key]
            for key in ("experiments", "tables", "table_metric", "seeds")
        },
        out_dir=lambda wildcards, output: str(Path(output.index).parent),
    script:
        "../scripts/tables.py"
