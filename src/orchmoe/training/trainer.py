"""Train adapters on a suite: AdamW, linear decay with warmup, routing losses, resumable checkpoints.

Defaults follow OrchMoE section 4.2 (AdamW, lr 5e-5, weight decay 0.01, linear decay, warmup ratio 0.06, batch
size 4, 1 epoch). Checkpoints (adapter weights + optimiser, scheduler and RNG state) go to a work folder that the
workflow does not declare as an output, because Snakemake deletes a failed job's outputs; resuming continues
from the last one and ends with the same weights as an uninterrupted run on CPU. A checkpoint is resumed only
when its fingerprint (code, runtime, base, init checkpoints, data, configs, seed) equals this run's.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import math
import pickle
import random
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import get_linear_schedule_with_warmup

from orchmoe import lineage
from orchmoe.adapters import AdapterConfig, attach_adapters
from orchmoe.data.batching import make_collator
from orchmoe.data.glm_format import input_format
from orchmoe.errors import ConfigError, TrainingError
from orchmoe.io import atomic_path, md5_file, md5_path, read_jsonl
from orchmoe.progress import progress
from orchmoe.seeding import seed_everything

from .diagnostics import router_diagnostics, routing_warnings

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    lr: float = 5e-5
    router_lr: float | None = None  # None = lr; mttl trains Poly routing logits at 0.1
    # OrchMoE's task router (a Linear on d-dim features) trains at this lr; None = lr. router_lr is meant for
    # allocation logits (T x S tables); on the task router it collapses w(X) to one abstract task (docs/methods.md)
    task_router_lr: float | None = None
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    batch_size: int = 4
    epochs: int = 1
    max_steps: int | None = None  # optimiser steps; caps epochs
    grad_accum: int = 1
    max_grad_norm: float | None = None  # the paper gives none
    max_source_length: int = 512
    max_target_length: int = 64
    save_every: int = 100
    log_every: int = 10
    # recompute each transformer block in backward: activation memory of one block, not all (10-11B bases)
    gradient_checkpointing: bool = False

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        for key in d:
            if key not in known:
                raise ConfigError(f"train config: unknown field {key!r} (known: {', '.join(sorted(known))})")
        ints = {"batch_size", "epochs", "grad_accum", "save_every", "log_every", "max_steps", "max_source_length",
                "max_target_length"}
        for key, value in d.items():
            if key == "gradient_checkpointing":
                if not isinstance(value, bool):
                    raise ConfigError(f"train config: {key}={value!r} must be true or false")
                continue
            wanted = int if key in ints else float
            optional = key in ("router_lr", "task_router_lr", "max_steps", "max_grad_norm")
            if value is None and optional:
                continue
            if isinstance(value, bool) or not isinstance(value, (int,) if wanted is int else (int, float)):
                raise ConfigError(f"train config: {key}={value!r} must be {'an integer' if wanted is int else 'a number'}")
        cfg = cls(**d)
        for name in ("lr", "batch_size", "epochs", "grad_accum", "save_every"):
            if not getattr(cfg, name) > 0:
                raise ConfigError(f"train config: {name}={getattr(cfg, name)!r} must be positive")
        return cfg


def _batches(records: list[dict], batch_size: int, seed: int, epoch: int) -> list[list[dict]]:
    order = torch.randperm(len(records), generator=torch.Generator().manual_seed(seed * 1000 + epoch)).tolist()
    return [[records[i] for i in order[k:k + batch_size]] for k in range(0, len(order), batch_size)]


def _latest_checkpoint(work: Path) -> Path | None:
    steps = sorted((int(p.name.split("-")[1]), p) for p in work.glob("step-*") if (p / "state.json").is_file())
    return steps[-1][1] if steps else None


def _rng_state() -> dict:
    """Every RNG's state as tensors and plain numbers, so that the state file loads with weights_only=True."""
    _, py_state, py_gauss = random.getstate()
    _, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "python": torch.tensor(py_state, dtype=torch.int64), "python_gauss": py_gauss,
             "numpy": torch.from_numpy(np_keys.astype(np.int64)), "numpy_pos": int(np_pos),
             "numpy_has_gauss": int(np_has_gauss), "numpy_gauss": float(np_gauss)}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"].tolist()), state["python_gauss"]))  # 3: the Mersenne Twister's version
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"],
                         state["numpy_has_gauss"], state["numpy_gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _md5(value) -> str:
    return hashlib.md5(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def code_md5() -> str:
    """md5 of the source files `orchmoe train` runs: the files lineage.py finds from its import graph (the same set
    the workflow's `code` param of the train rule hashes), so an edit that makes a train job stale also makes its
    resume state stale, and an edit elsewhere (report, metrics, ...) does not."""
    return lineage.fingerprint(lineage.command_files("train", lineage.SRC), lineage.SRC)


def weights_md5(model) -> str:
    """md5 of a model's config and every parameter and buffer: identifies a base passed without a base_md5."""
    h = hashlib.md5(model.config.to_json_string().encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def run_fingerprint(adapter_cfg: AdapterConfig, train_cfg: TrainConfig, seed: int, suite_dir, base_md5: str,
                    init_skills=()) -> dict[str, str]:
    """What resume state must agree on, component by component (so a mismatch can say which): the code, the
    libraries and device it ran on, the base model, the init checkpoints, the training data, both configs, the
    seed."""
    return {
        "code": code_md5(),
        "runtime": _md5({"torch": torch.__version__, "transformers": transformers.__version__,
                         "device": "cuda" if torch.cuda.is_available() else "cpu"}),
        "base": base_md5,
        "init": _md5([md5_path(d) for d in init_skills or ()]),
        "data": md5_file(Path(suite_dir) / "train.jsonl"),
        "adapter config": _md5(adapter_cfg.to_dict()),
        "train config": _md5(dataclasses.asdict(train_cfg)),
        "seed": str(seed),
    }


def _why_not_resume(state_file: Path, fingerprint: dict) -> str | None:
    """Why a checkpoint may not be resumed into this run (None: it may): the fingerprint components it differs in."""
    try:
        theirs = json.loads(state_file.read_text())["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        return "its state.json is unreadable"
    if not isinstance(theirs, dict):
        return "its fingerprint has no components (written by an older orchmoe)"
    names = list(fingerprint) + [k for k in theirs if k not in fingerprint]
    differ = [k for k in names if theirs.get(k) != fingerprint.get(k)]
    return f"made with different {', '.join(differ)}" if differ else None


def _remove_checkpoint(folder: Path) -> None:
    # state.json first: a removal killed half-way leaves a folder that is no longer taken for a checkpoint
    (folder / "state.json").unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


def clear_resume_state(work_dir) -> None:
    """Remove a run's step checkpoints (and half-written ones) once its final output is in place, so that a later
    run on the same --work starts from step 0. The folder itself goes only when nothing else is in it."""
    work = Path(work_dir)
    for folder in [*work.glob("step-*"), *work.glob(".step-*")]:
        _remove_checkpoint(folder)
    if work.is_dir() and not any(work.iterdir()):
        work.rmdir()


def _save_checkpoint(work: Path, step: int, model, optimizer, scheduler, log_rows, fingerprint: dict,
                     router_rows=()) -> None:
    with atomic_path(work / f"step-{step}") as tmp:
        tmp.mkdir()
        save_file({k: v.contiguous() for k, v in model.adapter_state_dict().items()}, str(tmp / "adapters.safetensors"))
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": _rng_state()}, tmp / "trainer_state.pt")
        (tmp / "log.json").write_text(json.dumps(log_rows))
        (tmp / "router_log.json").write_text(json.dumps(list(router_rows)))
        # state.json is written last: a folder without it is never taken for a checkpoint
        (tmp / "state.json").write_text(json.dumps({"step": step, "fingerprint": fingerprint}))
    for old in work.glob("step-*"):  # keep only the newest
        if old.name != f"step-{step}":
            _remove_checkpoint(old)


def train(base_model, tokenizer, suite_dir, adapter_cfg: AdapterConfig, train_cfg: TrainConfig, seed: int,
          work_dir, init_skills: list | None = None, stop_after: int | None = None, base_md5: str | None = None):
    """Returns the trained MultiAdapterModel (outputs: `write_outputs`); its `resumed_from_step` is the step it
    resumed from (None: from scratch) and `fingerprint` what its resume state had to agree on. base_md5 identifies
    the base (the CLI passes the md5 of its spec and files); None hashes the loaded weights and config. stop_after
    (tests) stops like a killed job after that many steps and returns None."""
    seed_everything(seed)
    if base_md5 is None:
        base_md5 = weights_md5(base_model)  # before attach_adapters wraps it
    model = attach_adapters(base_model, adapter_cfg)
    if init_skills:
        model.init_skills_from(init_skills)
    model.set_gradient_checkpointing(train_cfg.gradient_checkpointing)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    records = read_jsonl(Path(suite_dir) / "train.jsonl")
    if not records:
        raise ConfigError(f"{suite_dir}/train.jsonl: no training examples")
    collate = make_collator(tokenizer, model.is_encoder_decoder, train_cfg.max_source_length,
                            train_cfg.max_target_length, "train", input_format(base_model.config))
    micro_per_epoch = math.ceil(len(records) / train_cfg.batch_size)
    steps_per_epoch = math.ceil(micro_per_epoch / train_cfg.grad_accum)
    # max_steps, when set, replaces epochs: that many optimiser steps, wrapping over reshuffled epochs
    total = train_cfg.max_steps or steps_per_epoch * train_cfg.epochs
    optimizer = torch.optim.AdamW(model.param_groups(train_cfg.lr, train_cfg.router_lr, train_cfg.weight_decay,
                                                     train_cfg.task_router_lr or train_cfg.lr))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(train_cfg.warmup_ratio * total), total)

    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    fingerprint = run_fingerprint(adapter_cfg, train_cfg, seed, suite_dir, base_md5, init_skills)
    step, log_rows, router_rows, resumed_from = 0, [], [], None
    ckpt = _latest_checkpoint(work)
    why_not = _why_not_resume(ckpt / "state.json", fingerprint) if ckpt is not None else None
    if why_not:
        # state of another run on this --work (changed code, base, init, data, config or seed): resuming into it
        # would mix two runs, so it is removed and this run starts over
        log.warning("not resuming from %s: %s; starting from step 0", ckpt, why_not)
        for old in work.glob("step-*"):
            _remove_checkpoint(old)
        ckpt = None
    if ckpt is not None:
        state_file = ckpt / "trainer_state.pt"
        try:  # tensors and plain containers only: a state file from elsewhere cannot run code
            state = torch.load(state_file, weights_only=True)
        except pickle.UnpicklingError as e:
            # torch's message is 8 lines of advice; the reason is one sentence in it
            found = re.search(r"WeightsUnpickler error: (.*?)\.(?:\s|$)", str(e))
            raise TrainingError(f"{state_file}: refused, it holds more than tensors and plain containers "
                                f"({found.group(1) if found else str(e).strip().splitlines()[0]}); "
                                f"delete {work} to start over") from None
        weights = load_file(str(ckpt / "adapters.safetensors"))
        params = dict(model.named_parameters())
        with torch.no_grad():
            for k, v in weights.items():
                params[k].copy_(v)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        step = resumed_from = json.loads((ckpt / "state.json").read_text())["step"]
        log_rows = json.loads((ckpt / "log.json").read_text())
        if (ckpt / "router_log.json").is_file():
            router_rows = json.loads((ckpt / "router_log.json").read_text())
        log.warning("resuming from %s (step %d of %d)", ckpt, step, total)

    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)
    model.train()
    start = time.time()
    bar = progress(total, f"train {adapter_cfg.method}", initial=step, every=train_cfg.log_every)
    running = None
    while step < total:
        epoch, within = divmod(step, steps_per_epoch)
        batches = _batches(records, train_cfg.batch_size, seed, epoch)
        chunk = batches[within * train_cfg.grad_accum:(within + 1) * train_cfg.grad_accum] or batches[:train_cfg.grad_accum]
        optimizer.zero_grad(set_to_none=True)
        parts = {}
        for micro in chunk:
            batch = {k: v.to(device) for k, v in collate(micro).items()}
            with autocast:
                out = model(**batch, return_logits=False)  # the LM head at target positions only
                routing = model.routing_losses()
                loss = out.loss + sum(routing.values(), torch.zeros((), device=device))
            if not torch.isfinite(loss):
                raise TrainingError(f"non-finite loss ({loss.item()}) at step {step + 1} of {adapter_cfg.method}; "
                                    "nothing was written to the output folder")
            (loss / len(chunk)).backward()
            parts["lm_loss"] = parts.get("lm_loss", 0.0) + out.loss.item() / len(chunk)
            for k, v in routing.items():
                parts[f"{k}_loss"] = parts.get(f"{k}_loss", 0.0) + v.item() / len(chunk)
        if (step + 1) % train_cfg.log_every == 0 or step + 1 == total:  # before the step: this step's gradients
            router_rows += router_diagnostics(model, step + 1)
        if train_cfg.max_grad_norm:
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], train_cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        step += 1
        total_loss = parts["lm_loss"] + sum(v for k, v in parts.items() if k != "lm_loss")
        running = total_loss if running is None else 0.9 * running + 0.1 * total_loss
        bar.update(1)
        bar.set_postfix(loss=f"{running:.4f}", refresh=False)
        if step % train_cfg.log_every == 0 or step == total:
            log_rows.append({"step": step, "epoch": epoch, "loss": round(total_loss, 6),
                             **{k: round(v, 6) for k, v in parts.items()}, "lr": scheduler.get_last_lr()[0],
                             "seconds": round(time.time() - start, 3)})
        if step % train_cfg.save_every == 0 and step < total:
            _save_checkpoint(work, step, model, optimizer, scheduler, log_rows, fingerprint, router_rows)
        if stop_after is not None and step >= stop_after:
            _save_checkpoint(work, step, model, optimizer, scheduler, log_rows, fingerprint, router_rows)
            bar.close()
            return None
    bar.close()
    if collate.truncated["targets"] or collate.truncated["prompts"]:
        log.warning("truncated while training: %s (max_source_length=%d, max_target_length=%d)",
                    collate.truncated, train_cfg.max_source_length, train_cfg.max_target_length)
    model.train_log, model.truncated = log_rows, dict(collate.truncated)
    model.resumed_from_step, model.fingerprint = resumed_from, fingerprint
    model.router_log, model.routing_warnings = router_rows, routing_warnings(adapter_cfg.method, router_rows)
    return model


def write_outputs(out: Path, model) -> None:
    """Adapter weights + config, the training log and the learned routing (for the figures)."""
    log_rows, truncated = model.train_log, model.truncated
    model.save_adapters(out)
    with atomic_path(out / "train_log.csv") as tmp:
        first = ["step", "epoch", "loss", "lm_loss"]
        keys = first + sorted({k for row in log_rows for k in row} - set(first))
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(log_rows)
    report = model.routing_report()
    report["allocation"] = {k: v.tolist() for k, v in report["allocation"].items()}
    report["truncated"] = truncated
    report["warnings"] = getattr(model, "routing_warnings", [])
    router_rows = getattr(model, "router_log", [])
    if router_rows:  # router diagnostics per block (training/diagnostics.py), beside train_log.csv
        with atomic_path(out / "router_log.csv") as tmp:
            first = ["step", "block"]
            keys = first + sorted({k for row in router_rows for k in row} - set(first))
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=keys)
                writer.writeheader()
                writer.writerows(router_rows)
    with atomic_path(out / "routing.json") as tmp:
        tmp.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
