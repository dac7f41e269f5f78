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
        "orchmoe tables --experiment {params.experiment} --results results --out {params.out} > {log} 2>&1"
