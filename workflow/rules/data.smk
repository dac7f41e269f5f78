# Data: the built-in compositional suite (and its primitive-skills split for tiny-base pretraining), Super-NI
# sampling into suites, and per-domain subsets for the single-LoRA-per-domain runs that MoA starts from.


rule builtin_suite:
    output:
        skills=f"{raw_builtin()}/skills.json",
        tasks=directory(f"{raw_builtin()}/tasks"),
        primitives=directory(f"{raw_builtin()}/primitives"),
    params:
        b=config["builtin"],
        out=lambda w, output: os.path.dirname(output.skills),
        code=code("builtin-suite"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        f"logs/{EXP}/data/builtin_suite.log",
    conda:
        "../envs/orchmoe.yaml"
    shell:
        "orchmoe builtin-suite --out {params.out:q} --seed {params.b[seed]:q} --n-instances {params.b[n_instances]:q}"
        " --n-primitive-instances {params.b[n_primitive_instances]:q} --max-tasks {params.b[max_tasks]:q} > {log:q} 2>&1"


rule sample_suite:
    input:
        unpack(sample_inputs),
    output:
        manifest=f"data/processed/{EXP}/{{suite}}/manifest.json",
        train=f"data/processed/{EXP}/{{suite}}/train.jsonl",
        eval=f"data/processed/{EXP}/{{suite}}/eval.jsonl",
        unseen=f"data/processed/{EXP}/{{suite}}/unseen.jsonl",
    wildcard_constraints:
        suite="[A-Za-z0-9_]+",
    params:
        flags=sample_flags,
        settings=lambda w: recorded(SUITES[w.suite]),  # `flags` reads input paths, so Snakemake does not record it
        out=lambda w, output: os.path.dirname(output.manifest),
        command=lambda w, input: ["domains-sample"] if SUITES[w.suite]["source"] == "domains"
        else ["superni-sample", "--tasks-dir", input.tasks],
        code=code("superni-sample", "domains-sample"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        f"logs/{EXP}/data/sample_{{suite}}.log",
    conda:
        "../envs/orchmoe.yaml"
    shell:
        "orchmoe {params.command:q} --out {params.out:q} {params.flags:q} > {log:q} 2>&1"


rule sample_primitives:
    """Every primitive skill, for pretraining the tiny bases (the demo's stand-in for a pretrained model)."""
    input:
        f"{raw_builtin()}/primitives",
    output:
        manifest=f"{primitives_dir()}/manifest.json",
        train=f"{primitives_dir()}/train.jsonl",
    params:
        out=lambda w, output: os.path.dirname(output.manifest),
        seed=config["builtin"]["seed"],
        code=code("superni-sample"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        f"logs/{EXP}/data/sample_primitives.log",
    conda:
        "../envs/orchmoe.yaml"
    shell:
        "orchmoe superni-sample --tasks-dir {input:q}/tasks --out {params.out:q} --n-tasks all"
        " --n-train 100000 --n-eval 1 --n-unseen 0 --seed {params.seed:q} > {log:q} 2>&1"


rule domain_suite:
    """One domain's share of a suite (same task list, so task ids keep their meaning)."""
    input:
        f"data/processed/{EXP}/{{suite}}/manifest.json",
    output:
        manifest=f"data/processed/{EXP}/{{suite}}-domains/{{domain}}/manifest.json",
    params:
        suite=lambda w, input: os.path.dirname(input[0]),
        out=lambda w, output: os.path.dirname(output.manifest),
        domains=lambda w: ",".join(SUITES[w.suite].get("domains", [])),
        code=code(scripts=["workflow/scripts/domain_subset.py"]),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        f"logs/{EXP}/data/domain_{{suite}}_{{domain}}.log",
    conda:
        "../envs/orchmoe.yaml"
    shell:
        "python workflow/scripts/domain_subset.py --suite {params.suite:q} --domain {wildcards.domain:q}"
        " --expect-domains {params.domains:q} --out {params.out:q} > {log:q} 2>&1"


rule superni_download:
    """The full Super-NI task files (needs internet; point a suite's tasks_dir at data/raw/superni/tasks).
    A local rule: on SLURM it runs on the submit host, which has internet; compute nodes may not."""
    output:
        directory("data/raw/superni/tasks"),
    localrule: True
    params:
        code=code("superni-download"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    log:
        "logs/data/superni_download.log",
    conda:
        "../envs/orchmoe.yaml"
    shell:
        "orchmoe superni-download --out data/raw/superni > {log:q} 2>&1"
