"""Few-shot adaptation to held-out compositions (Polytropon's / MHR's protocol): the skills stay frozen and only
the routing for the new tasks trains, on the suite's unseen_train.jsonl (k examples per held-out task).

What "the routing for a new task" is, per method (docs/methods.md, few-shot protocol):
- poly / mhr: one new row of the task-skill allocation per held-out task (task ids n_tasks .. n_tasks+U-1), started
  at the mean of the learned logit rows (where zero-shot routing starts); the seen tasks' rows get no gradient.
- orchmoe: no task ids, so the held-out tasks share one routing: the task routers (W_task, b) and the skill logits
  (W_Skill) of every block, trained on the pooled few-shot examples.
- moa: its per-block domain routers; moe_lora: its token routers (both route by input, so pooled like orchmoe).
- lora (and per-domain LoRAs): no routing, nothing trains; few-shot = the zero-shot model on the same examples.
- the oracle reference (poly with a fixed ground-truth allocation): its held-out rows are given, nothing trains.
LoRA A / B of every skill have requires_grad False throughout; `adapt` checks they are bitwise unchanged.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
from torch import nn

from orchmoe.adapters import load_adapters
from orchmoe.adapters.methods.poly import PolyRouter
from orchmoe.data.batching import make_collator
from orchmoe.data.glm_format import input_format
from orchmoe.errors import DataError, TrainingError
from orchmoe.io import read_json, read_jsonl
from orchmoe.seeding import seed_everything

log = logging.getLogger(__name__)


def is_skill_param(name: str) -> bool:
    return ".bank." in f".{name}"


def skill_state(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters() if is_skill_param(n)}


@torch.no_grad()
def add_task_rows(model, n_new: int) -> int:
    """Poly / MHR: n_new allocation rows per router, initialised at the mean learned logits. Returns the first new id."""
    first = model.cfg.n_tasks
    for router in model.modules():
        if isinstance(router, PolyRouter):
            old = router.module_logits
            new = old.mean(0, keepdim=True).expand(n_new, -1)
            router.module_logits = nn.Parameter(torch.cat([old, new], 0))
            router.n_tasks = first + n_new
    model.cfg.n_tasks = first + n_new
    return first


def routing_params(model) -> list[nn.Parameter]:
    """Freeze the skills; what stays trainable is the routing (empty for a plain LoRA)."""
    for n, p in model.named_parameters():
        if is_skill_param(n):
            p.requires_grad_(False)
    return [p for n, p in model.named_parameters() if p.requires_grad]


def with_new_ids(records: list[dict], unseen_tasks: list[str], first_id: int | None) -> list[dict]:
    """Held-out records carry task id -1; Poly/MHR's adapted model knows them as first_id + their index."""
    if first_id is None:
        return records
    return [{**r, "task_id": first_id + unseen_tasks.index(r["task"])} for r in records]


def adapt(base_model, tokenizer, suite_dir, checkpoint, lr: float, steps: int, batch_size: int, seed: int,
          max_source_length: int, max_target_length: int):
    """Returns (adapted model, first new task id or None, log rows). Skills are checked bitwise unchanged."""
    seed_everything(seed)
    manifest = read_json(Path(suite_dir) / "manifest.json")
    path = Path(suite_dir) / "unseen_train.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: no few-shot examples (set the suite's n_unseen_train)")
    records = read_jsonl(path)
    model = load_adapters(base_model, checkpoint)
    learned = model.cfg.method in ("poly", "mhr") and model.cfg.oracle_allocation is None  # the oracle's rows are given
    first = add_task_rows(model, len(manifest["unseen_tasks"])) if learned else None
    records = with_new_ids(records, manifest["unseen_tasks"], first)
    before = skill_state(model)
    params = routing_params(model)
    rows = []
    if params:
        collate = make_collator(tokenizer, model.is_encoder_decoder, max_source_length, max_target_length, "train",
                                input_format(base_model.config))
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
        model.train()
        g = torch.Generator().manual_seed(seed)
        per_epoch = math.ceil(len(records) / batch_size)
        for step in range(steps):
            if step % per_epoch == 0:
                order = torch.randperm(len(records), generator=g).tolist()
            k = step % per_epoch
            batch = collate([records[i] for i in order[k * batch_size:(k + 1) * batch_size]])
            out = model(**batch)
            loss = out.loss + model.routing_loss()
            if not torch.isfinite(loss):
                raise TrainingError(f"adapt: non-finite loss at step {step + 1}; nothing was written")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            rows.append({"step": step + 1, "loss": round(loss.item(), 6)})
    after = skill_state(model)
    if any(not torch.equal(before[n], after[n]) for n in before):  # the protocol's premise, checked on every run
        raise TrainingError("adapt: a skill (LoRA A/B) changed while only the routing was to train")
    for n, p in model.named_parameters():  # saved checkpoints hold the requires_grad params: skills included
        if is_skill_param(n):
            p.requires_grad_(True)
    model.eval()
    return model, first, rows
