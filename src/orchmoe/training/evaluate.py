"""Evaluate a checkpoint (or the bare base model) on a suite split: greedy generation with cached routing,
per-example predictions, Super-NI metrics per task and averaged, BLEU, perplexity of the references, and MoA
router accuracy against domain labels."""
from __future__ import annotations

import math
from pathlib import Path

import sacrebleu
import torch

from orchmoe.adapters import load_adapters
from orchmoe.data.batching import make_collator
from orchmoe.errors import DataError
from orchmoe.io import read_jsonl
from orchmoe.metrics.superni import grouped_metrics


@torch.no_grad()
def evaluate(base_model, tokenizer, suite_dir, split: str, checkpoint=None, batch_size: int = 16,
             max_source_length: int = 512, max_target_length: int = 64, max_new_tokens: int | None = None):
    """Returns (predictions rows, metrics dict)."""
    path = Path(suite_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: split {split!r} not found in the suite")
    records = read_jsonl(path)
    model = load_adapters(base_model, checkpoint) if checkpoint else base_model
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device).eval()
    is_enc_dec = bool(getattr(base_model.config, "is_encoder_decoder", False))
    gen = make_collator(tokenizer, is_enc_dec, max_source_length, max_target_length, "generate")
    score = make_collator(tokenizer, is_enc_dec, max_source_length, max_target_length, "train")
    adapters = checkpoint is not None
    rows, nll, n_tokens = [], 0.0, 0
    for k in range(0, len(records), batch_size):
        chunk = records[k:k + batch_size]
        batch = {key: v.to(device) for key, v in gen(chunk).items()}
        routing = {key: batch.pop(key) for key in ("task_ids", "domain_ids", "prompt_mask")}
        kwargs = dict(max_new_tokens=max_new_tokens or max_target_length, do_sample=False, num_beams=1)
        if adapters:
            out = model.generate(**batch, **routing, **kwargs)
            last = model.last_routing()
        else:
            out = model.generate(**batch, **kwargs)
            last = {}
        new = out if is_enc_dec else out[:, batch["input_ids"].shape[1]:]
        texts = tokenizer.batch_decode(new, skip_special_tokens=True)
        predicted = _predicted_domains(last)
        skills = _skill_weights(model, last) if adapters else None
        for i, (r, text) in enumerate(zip(chunk, texts)):
            row = {"id": r["id"], "task": r["task"], "prediction": text.strip(), "references": r["references"]}
            if skills is not None:
                row["skill_weights"] = [round(float(x), 5) for x in skills[i]]
            if predicted is not None:
                row["predicted_domain"] = int(predicted[i])
                row["domain_id"] = r.get("domain_id", -1)
            rows.append(row)
        # perplexity of the first reference under teacher forcing (MoA Tables 2 and 8)
        sb = {key: v.to(device) for key, v in score(chunk).items()}
        routing = {key: sb.pop(key) for key in ("task_ids", "domain_ids", "prompt_mask")}
        logits = (model(**sb, **routing) if adapters else model(**sb)).logits
        labels = sb["labels"]
        if not is_enc_dec:
            logits, labels = logits[:, :-1], labels[:, 1:]
        mask = labels != -100
        nll += torch.nn.functional.cross_entropy(logits[mask].float(), labels[mask], reduction="sum").item()
        n_tokens += int(mask.sum())
    metrics = grouped_metrics(rows)
    metrics["n"] = len(rows)
    metrics["mean"]["bleu"] = round(sacrebleu.corpus_bleu([r["prediction"] for r in rows],
                                                          [[r["references"][0] for r in rows]]).score, 4) if rows else 0.0
    metrics["mean"]["perplexity"] = round(math.exp(nll / max(n_tokens, 1)), 4)
    labelled = [r for r in rows if r.get("domain_id", -1) >= 0 and "predicted_domain" in r]
    if labelled:
        metrics["mean"]["router_accuracy"] = round(
            100.0 * sum(r["predicted_domain"] == r["domain_id"] for r in labelled) / len(labelled), 4)
    return rows, metrics


def _skill_weights(model, last: dict):
    """OrchMoE: each example's skill weights alpha = w(X)^T W_hat in every block, concatenated (for Figure 3)."""
    groups = [k for k, v in last.items() if "task_weights" in v]
    if not groups:
        return None
    alloc = {r.name: r.allocation().cpu() for r in model.block_routers.values()}
    return torch.cat([last[g]["task_weights"].float() @ alloc[g].float() for g in sorted(groups)], dim=-1).tolist()


def _predicted_domains(last: dict):
    """MoA: the domain most blocks' routers chose for each example."""
    votes = [v["predicted_domain"] for v in last.values() if "predicted_domain" in v]
    if not votes:
        return None
    return torch.stack(votes).mode(dim=0).values.tolist()
