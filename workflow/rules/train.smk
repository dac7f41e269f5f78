rule train:
    """One job per experiment x base x method x seed. Resumable state lives in work/ (not a declared output:
    Snakemake deletes a failed job's outputs), so a killed job resumes from its last checkpoint."""
    input:
        suite=SUITE_MANIFEST,
        base=base_input,
    output:
        directory("results/checkpoints/{exp}/{base}/{method}/seed{seed}"),
    params:
        base=base_arg,
        adapter=adapter_config,
        train=lambda w: as_json(config["train"]),
        work="work/{exp}/{base}/{method}/seed{seed}",
    threads: 1
    resources:
        gpu=lambda w: config.get("resources", {}).get("train_gpu", 0),
        mem_mb=lambda w: config.get("resources", {}).get("train_mem_mb", 2000),
        runtime=lambda w: config.get("resources", {}).get("train_runtime", 30),
    log:
        "logs/{exp}/train/{base}/{method}/seed{seed}.log",
    benchmark:
        "logs/{exp}/benchmarks/train/{base}/{method}/seed{seed}.tsv"
    shell:
        "OMP_NUM_THREADS={threads} orchmoe train --base {params.base} --data {SUITE} --adapter-config {params.adapter}"
        " --train-config {params.train} --seed {wildcards.seed} --out {output} --work {params.work} > {log} 2>&1"
