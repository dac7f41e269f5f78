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
        split="eval|unseen",
    params:
        base=lambda w: base_arg(w.base),
        data=eval_data,
        checkpoint=lambda w, input: input.get("checkpoint", "none"),
        e=config["evaluate"],
        beams=f"--num-beams {config['evaluate']['num_beams']}" if "num_beams" in config["evaluate"] else "",
        code=code("evaluate"),
    threads: 1
    resources:
        gpu=train_gpu,
        mem_mb=eval_mem_mb,
        runtime=eval_runtime,
    log:
        f"logs/{EXP}/evaluate/{{suite}}/{{base}}/{{run}}/seed{{seed}}/{{split}}.log",
    conda:
        "../envs/orchmoe.yaml"
    shell:
        "OMP_NUM_THREADS={threads} orchmoe evaluate --base {params.base} --checkpoint {params.checkpoint}"
        " --data {params.data} --split {wildcards.split} --out {output} --batch-size {params.e[batch_size]}"
        " --max-source-length {params.e[max_source_length]} --max-target-length {params.e[max_target_length]}"
        " {params.beams} > {log} 2>&1"
