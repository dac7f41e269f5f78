# Figures: training curves, Figure 2 (score vs trainable parameters), Figure 3 (task dendrogram + heatmap with the
# adjusted Rand index against the built-in suite's ground truth), router accuracy. The HTML report itself is
# `snakemake --report` (see workflow/scripts/demo.sh); these outputs are its items.


def figure_suite():
    return config.get("figures", {}).get("suite", list(SUITES)[0])


rule figures:
    input:
        evals=EVALS,
        checkpoints=CHECKPOINTS,
        suite=f"{suite_dir(figure_suite())}/manifest.json",
        skills=[f"{raw_builtin()}/skills.json"] if SUITES[figure_suite()]["source"] == "builtin" else [],
    output:
        [report(f, category="Figures", labels={"figure": Path(f).stem}) if f.endswith(".png") else f for f in FIGURES],
    params:
        suite=suite_dir(figure_suite()),
        skills=lambda w, input: f"--skills {input.skills}" if input.skills else "",
        out=FIGURE_DIR,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        f"logs/{EXP}/report/figures.log",
    conda:
        "../envs/orchmoe.yaml"
    shell:
        "orchmoe figures --experiment {EXP} --results results --data {params.suite} {params.skills}"
        " --out {params.out} > {log} 2>&1"


def paper_figure_inputs(wildcards):
    suites = sorted({f["suite"] for f in REPORT.get("figures", {}).values() if "suite" in f})
    return {"evals": EVALS, "checkpoints": CHECKPOINTS, "suites": [f"{suite_dir(s)}/manifest.json" for s in suites]}


rule paper_figures:
    """The papers' figure layouts (config `report.figures`): OrchMoE Figure 2 (a line per method across ranks) and
    Figure 3 (one run's dendrogram + allocation heatmap)."""
    input:
        unpack(paper_figure_inputs),
    output:
        [report(f, category="Paper figures", labels={"figure": Path(f).stem}) if f.endswith(".png") else f
         for f in PAPER_FIGURES],
    params:
        spec=shlex.quote(json.dumps(REPORT.get("figures", {}))),  # key order = line order
        out=f"{FIGURE_DIR}/paper",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        f"logs/{EXP}/report/paper_figures.log",
    conda:
        "../envs/orchmoe.yaml"
    shell:
        "orchmoe paper-figures --experiment {EXP} --results results --data data/processed/{EXP} --spec {params.spec}"
        " --out {params.out} > {log} 2>&1"
