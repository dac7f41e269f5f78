rule builtin_suite:
    output:
        skills=f"{RAW}/builtin/skills.json",
        tasks=directory(f"{RAW}/builtin/tasks"),
        primitives=directory(f"{RAW}/builtin/primitives"),
    params:
        builtin=config["suite"].get("builtin", {}),
    log:
        f"logs/{EXP}/builtin_suite.log",
    shell:
        "orchmoe builtin-suite --out {RAW}/builtin --seed {config[suite][seed]}"
        " --n-instances {params.builtin[n_instances]} --n-primitive-instances {params.builtin[n_primitive_instances]}"
        " --max-tasks {params.builtin[max_tasks]} > {log} 2>&1"


def suite_tasks_dir(wildcards=None):
    s = config["suite"]
    return f"{RAW}/builtin/tasks" if s["source"] == "builtin" else s["tasks_dir"]


rule sample_suite:
    input:
        tasks=suite_tasks_dir(),
        skills=f"{RAW}/builtin/skills.json" if config["suite"]["source"] == "builtin" else [],
    output:
        manifest=SUITE_MANIFEST,
        train=f"{SUITE}/train.jsonl",
        eval=f"{SUITE}/eval.jsonl",
        unseen=f"{SUITE}/unseen.jsonl",
    params:
        s=config["suite"],
        domains=lambda w, input: f"--task-domains {input.skills}" if input.skills else "",
    log:
        f"logs/{EXP}/sample_suite.log",
    shell:
        "orchmoe superni-sample --tasks-dir {input.tasks} --out {SUITE} --n-tasks {params.s[n_tasks]}"
        " --n-train {params.s[n_train]} --n-eval {params.s[n_eval]} --n-unseen {params.s[n_unseen]}"
        " --n-unseen-eval {params.s[n_unseen_eval]} --seed {params.s[seed]} {params.domains} > {log} 2>&1"


rule sample_primitives:
    input:
        f"{RAW}/builtin/primitives",
    output:
        manifest=f"{PRIMITIVES}/manifest.json",
        train=f"{PRIMITIVES}/train.jsonl",
    log:
        f"logs/{EXP}/sample_primitives.log",
    shell:
        "orchmoe superni-sample --tasks-dir {input}/tasks --out {PRIMITIVES} --n-tasks all"
        " --n-train 100000 --n-eval 1 --n-unseen 0 --seed {config[suite][seed]} > {log} 2>&1"
