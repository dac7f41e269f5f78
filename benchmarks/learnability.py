"""Check that the built-in suite is learnable by a tiny byte-level model, not just generated.

`python benchmarks/learnability.py --out DIR` writes the suite with the demo's sizes, trains a tiny T5 from scratch
(full fine-tuning, every parameter) on its train split and reports greedy exact match per task on its eval split,
next to the score of the best constant-free baseline "copy the input" (what a model that learned nothing beats).
docs/data.md quotes the result file this writes.
"""
from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import torch

from orchmoe.io import read_jsonl, write_json


def run(out_dir, arch: str = "t5", steps: int = 400, seed: int = 0, threads: int = 2, d_model: int = 128, n_layers: int = 2,
        batch_size: int = 32, lr: float = 3e-3, n_instances: int = 136, n_train: int = 120, n_eval: int = 16) -> dict:
    from orchmoe.data.batching import make_collator
    from orchmoe.data.builtin import write_builtin_suite
    from orchmoe.data.superni import sample_superni
    from orchmoe.metrics.superni import exact_match
    from orchmoe.models.pretrain import pretrain_tiny
    from orchmoe.models.tiny import byte_tokenizer

    torch.set_num_threads(threads)
    out = Path(out_dir)
    write_builtin_suite(out / "raw", n_instances=n_instances, n_primitive_instances=8, seed=seed)
    sample_superni(out / "raw" / "tasks", out / "suite", n_tasks="all", n_train=n_train, n_eval=n_eval, n_unseen=0,
                   seed=seed)
    start = time.time()
    model_dir = pretrain_tiny(arch, out / "suite", out / "model", steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                              max_source_length=128, max_target_length=16, d_model=d_model, n_layers=n_layers,
                              n_heads=4, d_ff=2 * d_model)
    train_seconds = time.time() - start
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    enc_dec = arch == "t5"
    model = (AutoModelForSeq2SeqLM if enc_dec else AutoModelForCausalLM).from_pretrained(model_dir).eval()
    tok = byte_tokenizer()
    rows = read_jsonl(out / "suite" / "eval.jsonl")
    collate = make_collator(tok, enc_dec, 128, 16, "generate")
    hits, official, copy_hits = defaultdict(list), defaultdict(list), defaultdict(list)
    with torch.no_grad():
        for i in range(0, len(rows), 64):
            chunk = rows[i:i + 64]
            b = collate(chunk)
            gen = model.generate(input_ids=b["input_ids"], attention_mask=b["attention_mask"], max_new_tokens=16,
                                 do_sample=False, num_beams=1, pad_token_id=0)
            if not enc_dec:
                gen = gen[:, b["input_ids"].shape[1]:]
            for r, text in zip(chunk, tok.batch_decode(gen, skip_special_tokens=True)):
                # case-sensitive: the official EM lowercases, which would credit "abc" for "ABC"
                hits[r["task"]].append(float(text.strip() == r["target"]))
                official[r["task"]].append(exact_match(text, r["references"]))
                source = r["prompt"].rsplit("Input: ", 1)[1].rsplit("\nOutput:", 1)[0]
                copy_hits[r["task"]].append(float(source == r["target"]))
    per_task = {t: round(100 * sum(v) / len(v), 2) for t, v in sorted(hits.items())}
    result = {
        "command": f"python benchmarks/learnability.py --out {out_dir} --arch {arch} --steps {steps} --seed {seed} "
                   f"--threads {threads} --d-model {d_model} --n-layers {n_layers}",
        "params": {"arch": arch, "steps": steps, "seed": seed, "threads": threads, "d_model": d_model, "n_layers": n_layers,
                   "batch_size": batch_size, "lr": lr, "n_train": n_train, "n_eval": n_eval},
        "train_seconds": round(train_seconds, 1),
        "exact_match_per_task": per_task,
        "exact_match_mean": round(sum(per_task.values()) / len(per_task), 2),
        "official_exact_match_mean": round(sum(100 * sum(v) / len(v) for v in official.values()) / len(official), 2),
        "copy_input_exact_match_mean": round(
            sum(100 * sum(v) / len(v) for v in copy_hits.values()) / len(copy_hits), 2),
        "tasks_above_50": sum(v > 50 for v in per_task.values()),
    }
    write_json(out / "learnability.json", result)
    return result


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--arch", default="t5", choices=["t5", "llama", "gpt2"])
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--n-layers", type=int, default=2)
    a = p.parse_args(argv)
    r = run(a.out, a.arch, a.steps, a.seed, a.threads, a.d_model, a.n_layers)
    print({k: r[k] for k in ("train_seconds", "exact_match_mean", "copy_input_exact_match_mean", "tasks_above_50")})


if __name__ == "__main__":
    main()
