# Training: one job per suite x base x run x seed (a run is a method entry, one point of its sweep, and for
# per-domain single LoRAs one domain). Resumable state lives in work/ - NOT a declared output, because Snakemake
# deletes a failed job's outputs - so a killed job resumes from its last step checkpoint when rerun.


rule train:
    input:
        unpack(train_inputs),
    output:
        directory(ckpt("{suite}", "{base}", "{run}", "{seed}")),
    wildcard_constraints:
        run="[A-Za-z0-9_.@-]+",
        seed="[0-9]+",
    params:
        base=lambda w: base_arg(w.base),
        data=lambda w: run_data(run_of(w)),
        adapter=lambda w: as_json(run_of(w)["adapter"]),
        train=lambda w: as_json(run_of(w)["train"]),
        init=lambda w, input: ["--init-skills", *input.init] if input.init else [],
        oracle=lambda w, input: (["--oracle-skills", input.skills] if "skills" in input.keys() else [])
        + (["--per-task"] if run_of(w).get("per_task") else []),
        work=lambda w: f"work/{EXP}/{w.suite}/{w.base}/{w.run}/seed{w.seed}",
        spec=lambda w: recorded(run_of(w)),  # `init` and `oracle` read input paths, so Snakemake does not record them
        code=code("train"),
    threads: 1
    resources:
        gpu=train_gpu,
        mem_mb=train_mem_mb,
        runtime=train_runtime,
    log:
        f"logs/{EXP}/train/{{suite}}/{{base}}/{{run}}/seed{{seed}}.log",
    benchmark:
        f"logs/{EXP}/benchmarks/train/{{suite}}/{{base}}/{{run}}/seed{{seed}}.tsv"
    conda:
        "../envs/orchmoe.yaml"
    shell:
        "OMP_NUM_THREADS={threads:q} orchmoe train --base {params.base:q} --data {params.data:q}"
        " --adapter-config {params.adapter:q} --train-config {params.train:q} --seed {wildcards.seed:q}"
        " --out {output:q} --work {params.work:q} {params.init:q} {params.oracle:q} > {log:q} 2>&1"
