# Aggregate: every metrics file -> the long table, the papers' tables (CSV/Markdown/LaTeX) and summary.json
# (`dvc metrics show`).


rule tables:
    input:
        evals=EVALS,
        checkpoints=CHECKPOINTS,
    output:
        [report(t, category="Tables", labels={"table": Path(t).name}) if t.endswith((".csv", ".md")) and "metrics_long" not in t else t for t in TABLES],
    params:
        out=TABLE_DIR,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        f"logs/{EXP}/report/tables.log",
    conda:
        "../envs/orchmoe.yaml"
    shell:
        "orchmoe tables --experiment {EXP} --results results --out {params.out} > {log} 2>&1"


rule params_table:
    """Parameter counts of every run from the bases' architecture configs, no weights (`orchmoe params`), with the
    papers' values beside (OrchMoE Table 4's ratio, MoA Table 4)."""
    input:
        CONFIG_FILE,
    output:
        PARAMS_CSV or "NO_REPORT",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        f"logs/{EXP}/report/params.log",
    conda:
        "../envs/orchmoe.yaml"
    shell:
        "orchmoe params --config {input} --out {output} > {log} 2>&1"


rule paper_tables:
    """The papers' table layouts (config `report.tables`): OrchMoE Tables 1-4, MoA Tables 2, 3, 4, 7, 8."""
    input:
        evals=EVALS,
        checkpoints=CHECKPOINTS,
        params=PARAMS_CSV or [],
    output:
        [report(t, category="Paper tables", labels={"table": Path(t).name}) if t.endswith(".md") else t
         for t in PAPER_TABLES],
    params:
        spec=shlex.quote(json.dumps(REPORT.get("tables", {}))),  # key order = row order
        out=f"{TABLE_DIR}/paper",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        f"logs/{EXP}/report/paper_tables.log",
    conda:
        "../envs/orchmoe.yaml"
    shell:
        "orchmoe paper-tables --experiment {EXP} --results results --spec {params.spec} --params {input.params}"
        " --out {params.out} > {log} 2>&1"
