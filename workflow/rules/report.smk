rule tables:
    input:
        evals=EVALS,
        checkpoints=CHECKPOINTS,
    output:
        [report(t, category="Tables") if t.endswith(".csv") and "main" in t else t for t in TABLES],
    log:
        f"logs/{EXP}/tables.log",
    shell:
        "orchmoe tables --experiment {EXP} --results results --out {TABLE_DIR} > {log} 2>&1"


rule figures:
    input:
        evals=EVALS,
        checkpoints=CHECKPOINTS,
        suite=SUITE_MANIFEST,
    output:
        [report(f, category="Figures") if f.endswith(".png") else f for f in FIGURES],
    params:
        skills=f"--skills {RAW}/builtin/skills.json" if config["suite"]["source"] == "builtin" else "",
    log:
        f"logs/{EXP}/figures.log",
    shell:
        "orchmoe figures --experiment {EXP} --results results --data {SUITE} {params.skills} --out {FIGURE_DIR}"
        " > {log} 2>&1"
