rule pretrain_base:
    """A tiny base pretrained from scratch on the primitive skills (stands in for the papers' pretrained models)."""
    input:
        f"{PRIMITIVES}/train.jsonl",
    output:
        directory("results/bases/{exp}/{base}"),
    params:
        base=lambda w: config["bases"][w.base],
        p=lambda w: config["bases"][w.base]["pretrain"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    log:
        "logs/{exp}/pretrain_{base}.log",
    benchmark:
        "logs/{exp}/benchmarks/pretrain_{base}.tsv"
    shell:
        "OMP_NUM_THREADS={threads} orchmoe pretrain-base --arch {params.base[arch]} --data {PRIMITIVES} --out {output}"
        " --steps {params.p[steps]} --lr {params.p[lr]} --batch-size {params.p[batch_size]}"
        " --d-model {params.p[d_model]} --n-layers {params.p[n_layers]} --n-heads {params.p[n_heads]}"
        " --d-ff {params.p[d_ff]} --seed {config[suite][seed]} > {log} 2>&1"


rule fetch_smollm2:
    output:
        "results/bases/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    log:
        "logs/fetch_smollm2.log",
    shell:
        "orchmoe fetch-smollm2 --out results/bases/smollm2 > {log} 2>&1"
