# Figures: training curves, Figure 2 (score vs trainable parameters), Figure 3 (task dendrogram + heatmap with the
# adjusted Rand index against the built-in suite's ground truth), router accuracy. The HTML report itself is
# `snakemake --report` (see workflow/scripts/demo.sh); these outputs are its items.


rule figures:
    input:
        evals=EVALS,
        checkpoints=CHECKPOINTS,
        suite=f"{suite_dir(figure_suite())}/manifest.json",
        skills=[f"{raw_builtin()}/skills.json"] if SUITES[figure_suite()]["source"] == "builtin" else [],
    output:
        [report(f, caption=f"../report/captions/{Path(f).stem}.rst", category="Figures", labels={"figure": Path(f).stem})
         if f.endswith(".png") else report(f, caption="../report/captions/table.rst", category="Routing",
                                           labels={"table": Path(f).name}) if f.endswith(".md") else f
         for f in FIGURES],
    params:
        suite=lambda w, input: os.path.dirname(input.suite),
        skills=lambda w, input: ["--skills", *input.skills] if input.skills else [],
        out=lambda w, output: os.path.dirname(output[0]),
        experiment=EXP,
        code=code("figures"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        f"logs/{EXP}/report/figures.log",
    conda:
        "../envs/orchmoe.yaml"
    shell:
        "orchmoe figures --experiment {params.experiment:q} --results results --data {params.suite:q} {params.skills:q}"
        " --out {params.out:q} > {log:q} 2>&1"


rule paper_figures:
    """The papers' figure layouts (config `report.figures`): OrchMoE Figure 2 (a line per method across ranks) and
    Figure 3 (one run's dendrogram + allocation heatmap)."""
    input:
        unpack(paper_figure_inputs),
    output:
        [report(f, category="Paper figures", labels={"figure": Path(f).stem}) if f.endswith(".png") else f
         for f in PAPER_FIGURES],
    params:
        spec=json.dumps(REPORT.get("figures", {})),  # key order = line order
        out=f"{FIGURE_DIR}/paper",
        experiment=EXP,
        data=f"data/processed/{EXP}",
        code=code("paper-figures"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        f"logs/{EXP}/report/paper_figures.log",
    conda:
        "../envs/orchmoe.yaml"
    shell:
        "orchmoe paper-figures --experiment {params.experiment:q} --results results --data {params.data:q}"
        " --spec {params.spec:q} --out {params.out:q} > {log:q} 2>&1"
