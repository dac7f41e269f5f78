# Evaluation: generation + Super-NI metrics for every checkpoint on the suite's eval split (and the unseen-task
# split where the suite has one and the method entry asks for it), plus the frozen base model without adapters ("base"), the floor of every table.


rule evaluate:
    input:
        unpack(eval_inputs),
    output:
        directory(eval_dir("{suite}", "{base}", "{run}", "{seed}", "{split}")),
    wildcard_constraints:
        run="[A-Za-z0-9_.@-]+",
        seed="[0-9]+",
        split="eval|unseen",  # "fewshot" is written by rule adapt
    params:
        base=lambda w: base_arg(w.base),
        data=eval_data,
        checkpoint=lambda w, input: input.get("checkpoint", "none"),
        e=config["evaluate"],
        beams=["--num-beams", config["evaluate"]["num_beams"]] if "num_beams" in config["evaluate"] else [],
        code=code("evaluate"),
    threads: 1
    resources:
        gpu=train_gpu,
        mem_mb=eval_mem_mb,
        runtime=eval_runtime,
    log:
        f"logs/{EXP}/evaluate/{{suite}}/{{base}}/{{run}}/seed{{seed}}/{{split}}.log",
    benchmark:
        f"logs/{EXP}/benchmarks/evaluate/{{suite}}/{{base}}/{{run}}/seed{{seed}}/{{split}}.tsv"
    conda:
        "../envs/orchmoe.yaml"
    shell:
        "OMP_NUM_THREADS={threads:q} orchmoe evaluate --base {params.base:q} --checkpoint {params.checkpoint:q}"
        " --data {params.data:q} --split {wildcards.split:q} --out {output:q} --batch-size {params.e[batch_size]:q}"
        " --max-source-length {params.e[max_source_length]:q} --max-target-length {params.e[max_target_length]:q}"
        " {params.beams:q} > {log:q} 2>&1"


# Few-shot adaptation to the held-out compositions (Polytropon's / MHR's protocol): only the routing for the new
# tasks trains, on k = n_unseen_train examples of each, the skills stay frozen; then the held-out eval split.
rule adapt:
    input:
        data=lambda w: f"{suite_dir(w.suite)}/manifest.json",
        base=lambda w: base_target(w.base),
        checkpoint=lambda w: ckpt(w.suite, w.base, w.run, w.seed),
    output:
        directory(eval_dir("{suite}", "{base}", "{run}", "{seed}", "fewshot")),
    wildcard_constraints:
        run="[A-Za-z0-9_.@-]+",
        seed="[0-9]+",
    params:
        base=lambda w: base_arg(w.base),
        data=lambda w: suite_dir(w.suite),
        a=config["adapt"],
        e=config["evaluate"],
        beams=["--num-beams", config["evaluate"]["num_beams"]] if "num_beams" in config["evaluate"] else [],
        code=code("adapt"),
    threads: 1
    resources:
        gpu=train_gpu,
        mem_mb=train_mem_mb,
        runtime=train_runtime,
    log:
        f"logs/{EXP}/adapt/{{suite}}/{{base}}/{{run}}/seed{{seed}}.log",
    benchmark:
        f"logs/{EXP}/benchmarks/adapt/{{suite}}/{{base}}/{{run}}/seed{{seed}}.tsv"
    conda:
        "../envs/orchmoe.yaml"
    shell:
        "OMP_NUM_THREADS={threads:q} orchmoe adapt --base {params.base:q} --checkpoint {input.checkpoint:q}"
        " --data {params.data:q} --out {output:q} --lr {params.a[lr]:q} --steps {params.a[steps]:q}"
        " --batch-size {params.a[batch_size]:q} --eval-batch-size {params.e[batch_size]:q} --seed {wildcards.seed:q}"
        " --max-source-length {params.e[max_source_length]:q} --max-target-length {params.e[max_target_length]:q}"
        " {params.beams:q} > {log:q} 2>&1"
