# Aggregate: every metrics file -> the long table, the papers' tables (CSV/Markdown/LaTeX) and summary.json
# (`dvc metrics show`).


rule tables:
    input:
        evals=EVALS,
        checkpoints=CHECKPOINTS,
    output:
        [report(t, caption="../report/captions/table.rst", category="Tables", labels={"table": Path(t).name})
         if t.endswith((".csv", ".md")) and "metrics_long" not in t else t for t in TABLES],
    params:
        out=lambda w, output: os.path.dirname(output[0]),
        experiment=EXP,
        code=code("tables"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        f"logs/{EXP}/report/tables.log",
    conda:
        "../envs/orchmoe.yaml"
    shell:
        "orchmoe tables --experiment {params.experiment:q} --results results --out {params.out:q} > {log:q} 2>&1"


rule params_table:
    """Parameter counts of every run from the bases' architecture configs, no weights (`orchmoe params`), with the
    papers' values beside (OrchMoE Table 4's ratio, MoA Table 4)."""
    input:
        CONFIG_FILE,
    output:
        PARAMS_CSV or "NO_REPORT",
    params:
        read=recorded({**{k: config[k] for k in ("experiment", "suites", "methods")}, "bases": PARAMS_BASES}),
        code=code("params"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        f"logs/{EXP}/report/params.log",
    conda:
        "../envs/orchmoe.yaml"
    shell:
        "orchmoe params --config {input:q} --out {output:q} > {log:q} 2>&1"


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
        spec=json.dumps(REPORT.get("tables", {})),  # key order = row order
        out=f"{TABLE_DIR}/paper",
        experiment=EXP,
        code=code("paper-tables"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        f"logs/{EXP}/report/paper_tables.log",
    conda:
        "../envs/orchmoe.yaml"
    shell:
        "orchmoe paper-tables --experiment {params.experiment:q} --results results --spec {params.spec:q}"
        " --params {input.params:q} --out {params.out:q} > {log:q} 2>&1"
