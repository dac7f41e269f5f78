#!/usr/bin/env bash
# Real run: SmolLM2-135M-Instruct (GGUF) on the real Super-NI sample, LoRA vs OrchMoE, on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
R=work/engine-real
mkdir -p $R
O=$(pwd)/.venv/bin/orchmoe
$O fetch-smollm2 --out models/smollm2
$O superni-sample --tasks-dir ../shared/data/superni-sample/tasks --out $R/suite --n-tasks 8 --n-train 16 \
   --n-eval 2 --n-unseen 0 --english-only --seed 0
TC='{"lr": 0.001, "router_lr": 0.01, "batch_size": 4, "max_steps": 12, "max_source_length": 128, "max_target_length": 16, "save_every": 4, "log_every": 2}'
for m in lora orchmoe; do
  if [ $m = lora ]; then AC='{"method": "lora", "target_modules": ["q_proj", "k_proj", "v_proj"], "rank": 16}';
  else AC='{"method": "orchmoe", "target_modules": ["q_proj", "k_proj", "v_proj"], "rank": 4, "n_skills": 4}'; fi
  /usr/bin/time -v $O train --base models/smollm2 --data $R/suite --adapter-config "$AC" --train-config "$TC" \
     --seed 0 --out $R/ckpt-$m --work $R/work-$m 2> $R/train-$m.err
  $O evaluate --base models/smollm2 --checkpoint $R/ckpt-$m --data $R/suite --split eval --out $R/eval-$m \
     --batch-size 8 --max-source-length 128 --max-target-length 16 2> $R/eval-$m.err
done
echo done; .venv/bin/python benchmarks/render_real_run.py benchmarks/real_run.sh
