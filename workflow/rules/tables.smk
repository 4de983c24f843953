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
                labels={
                    "table": table_report_label(table),
                    "format": "LaTeX, {protocol} protocol".format(
                        **config["table_metric"]
                    ),
                },
            )
            for table in TABLES
        ],
        standard=[
            report(
                f"results/tables/standard/{table}.tex",
                caption="../report/table.rst",
                category="Tables",
                labels={
                    "table": table_report_label(table),
                    "format": "LaTeX, standard protocol",
                },
            )
            for table in TABLES
        ],
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
        tables=config["tables"],
        experiments=lambda wildcards: experiment_labels_and_papers(),
        table_metric=config["table_metric"],
        seeds=len(SEEDS),
        out_dir=lambda wildcards, output: str(Path(output.index).parent),
    message:
        "tables: LaTeX Tables (configured and standard protocol) and {output.markdown}"
    script:
        "../scripts/tables.py"


# summary.csv -> Tables 1-5 as HTML pages (both protocols), shown in the report's page.
rule tables_html:
    input:
        "results/summary.csv",
    output:
        tables=[
            report(
                f"results/tables/{table}.html",
                caption="../report/table_html.rst",
                category="Tables",
                labels={
                    "table": table_report_label(table),
                    "format": "HTML, both protocols",
                },
            )
            for table in TABLES
        ],
    log:
        "logs/tables/tables_html.log",
    benchmark:
        "benchmarks/tables/tables_html.tsv"
    localrule: True
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 1000 * attempt,
        runtime=lambda wildcards, attempt: 10 * attempt,
    params:
        tables=config["tables"],
        experiments=lambda wildcards: experiment_labels_and_papers(),
        protocols=lambda wildcards: protocols_text(),
        table_metric=config["table_metric"],
        seeds=len(SEEDS),
    message:
        f"{len(TABLES)} tables as HTML for the report, both protocols -> results/tables/*.html"
    script:
        "../scripts/tables_html.py"
