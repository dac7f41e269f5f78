def checkpoint_input(wildcards):
    if wildcards.method == "base":
        return []
    return f"results/checkpoints/{wildcards.exp}/{wildcards.base}/{wildcards.method}/seed{wildcards.seed}"


rule evaluate:
    input:
        suite=SUITE_MANIFEST,
        base=base_input,
        checkpoint=checkpoint_input,
    output:
        directory("results/eval/{exp}/{base}/{method}/seed{seed}"),
    params:
        base=base_arg,
        checkpoint=lambda w, input: input.checkpoint or "none",
        e=config["evaluate"],
    threads: 1
    resources:
        gpu=lambda w: config.get("resources", {}).get("eval_gpu", 0),
        mem_mb=2000,
        runtime=30,
    log:
        "logs/{exp}/evaluate/{base}/{method}/seed{seed}.log",
    shell:
        "OMP_NUM_THREADS={threads} orchmoe evaluate --base {params.base} --checkpoint {params.checkpoint}"
        " --data {SUITE} --split eval --out {output} --batch-size {params.e[batch_size]}"
        " --max-source-length {params.e[max_source_length]} --max-target-length {params.e[max_target_length]}"
        " > {log} 2>&1"
