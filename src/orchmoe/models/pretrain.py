"""Pretrain a tiny base model from scratch on a suite (the built-in primitive-skills split) for the CPU demo.

The papers adapt pretrained T5 / GLM models; a randomly initialised frozen base would leave the adapters nothing to
build on. This step gives the demo's tiny frozen bases the primitive skills, so adapters learn their compositions.
"""
from __future__ import annotations

import csv
import time
from pathlib import Path

import torch

from orchmoe.data.batching import make_collator
from orchmoe.data.glm_format import input_format
from orchmoe.io import atomic_path, read_jsonl
from orchmoe.progress import progress
from orchmoe.seeding import seed_everything

from .tiny import build_tiny, byte_tokenizer


def pretrain_tiny(arch: str, suite_dir, out_dir, steps: int = 300, batch_size: int = 16, lr: float = 1e-3,
                  seed: int = 0, max_source_length: int = 256, max_target_length: int = 32, **model_kwargs) -> Path:
    seed_everything(seed)
    model = build_tiny(arch, seed=seed, **model_kwargs).train()
    tokenizer = byte_tokenizer()
    records = read_jsonl(Path(suite_dir) / "train.jsonl")
    collate = make_collator(tokenizer, model.config.is_encoder_decoder, max_source_length, max_target_length,
                            input_format=input_format(model.config))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, steps // 10)))
    g = torch.Generator().manual_seed(seed)
    rows, start = [], time.time()
    bar = progress(steps, f"pretrain {arch}", every=max(10, steps // 20))
    for step in range(1, steps + 1):
        idx = torch.randint(len(records), (batch_size,), generator=g).tolist()
        batch = collate([records[i] for i in idx])
        for key in ("task_ids", "domain_ids", "prompt_mask"):
            batch.pop(key)
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 10 == 0 or step == steps:
            rows.append({"step": step, "loss": round(loss.item(), 6), "seconds": round(time.time() - start, 2)})
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        bar.update(1)
    bar.close()
    out = Path(out_dir)
    with atomic_path(out) as tmp:
        model.eval().save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        with open(tmp / "pretrain_log.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["step", "loss", "seconds"])
            w.writeheader()
            w.writerows(rows)
    return out
