"""Evaluate a checkpoint (or the bare base model) on a suite split.

Greedy generation with cached routing -> one row per example in predictions.jsonl (prediction, references, the
summed NLL of the first reference and its token count, routing read-outs), so every metric in metrics.json can be
recomputed from that file (`metrics_from_predictions`). Metrics: Super-NI EM / ROUGE-1 / ROUGE-L / ROUGE-Lsum per
task and pooled, sacrebleu BLEU, perplexity of the references; for MoA checkpoints the router accuracy against
domain labels and a logistic-regression classifier on the same pooled prompt features (MoA Table 3).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from orchmoe.adapters import load_adapters, read_adapter_config, registry
from orchmoe.adapters.routing import masked_rms_norm, mean_pool, sequence_mask
from orchmoe.data import glm_format
from orchmoe.data.batching import make_collator
from orchmoe.errors import DataError
from orchmoe.io import read_jsonl
from orchmoe.metrics.lm import bleu, perplexity, token_nll
from orchmoe.metrics.router import classifier_predictions, router_accuracy
from orchmoe.metrics.superni import grouped_metrics
from orchmoe.progress import progress

ROUTING_KEYS = ("task_ids", "domain_ids", "prompt_mask")


@torch.no_grad()
def pooled_features(model, batch: dict, layer: int = 0) -> torch.Tensor:
    """The MoA router's input: RMS-normalised hidden states entering transformer block `layer` (0 = the
    embeddings), mean-pooled over prompt tokens. For encoder-decoder models the encoder's states are used."""
    if "generation_attention_mask" in batch:  # GLM's format: context + <sop> in one pass (orchmoe.data.glm_format)
        from orchmoe.data.glm_format import forward_inputs

        kwargs = forward_inputs(batch) | {"output_hidden_states": True}
    else:
        kwargs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
                  "output_hidden_states": True}
    if getattr(model.config, "is_encoder_decoder", False):
        hidden = model.get_encoder()(**kwargs).hidden_states[layer]
    else:
        out = model(**kwargs)
        # THUDM's remote GLM has no hidden_states output; its `mems` are the same states (block inputs, then output)
        hidden = (out.hidden_states if getattr(out, "hidden_states", None) is not None else out.mems)[layer]
    return mean_pool(masked_rms_norm(hidden.float()), sequence_mask(hidden, batch["prompt_mask"])).cpu()


def read_split(suite_dir, split: str) -> list[dict]:
    path = Path(suite_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: split {split!r} not found in the suite")
    records = read_jsonl(path)
    if not records:
        raise DataError(f"{path}: split {split!r} is empty; nothing to evaluate")
    return records


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


@torch.no_grad()
def evaluate(base_model, tokenizer, suite_dir, split: str, checkpoint=None, batch_size: int = 16,
             max_source_length: int = 512, max_target_length: int = 64, max_new_tokens: int | None = None,
             xlingual_tokenizer: str | None = None, seed: int = 0, num_beams: int = 1):
    """Returns (prediction rows, metrics dict). Greedy decoding (num_beams=1, Tk-Instruct) or beam search (mttl: 4)."""
    records = read_split(suite_dir, split)
    names = read_adapter_config(checkpoint).task_names if checkpoint else None
    if names:  # the oracle knows every task by name, held-out ones included: route each by its own row
        records = [{**r, "task_id": names.index(r["task"])} if r["task"] in names else r for r in records]
    device = _device()
    is_enc_dec = bool(getattr(base_model.config, "is_encoder_decoder", False))
    fmt = glm_format.input_format(base_model.config)  # GLM: its own [gMASK] / <sop> layout
    width = max_new_tokens or max_target_length  # GLM's generation mask spans the tokens generate() may add
    gen = make_collator(tokenizer, is_enc_dec, max_source_length, width, "generate", fmt)
    score = make_collator(tokenizer, is_enc_dec, max_source_length, max_target_length, "train", fmt)
    base_model.to(device).eval()
    # domain-routed methods (MoA) are compared with a plain domain classifier on the frozen base
    moa = checkpoint is not None and registry.get(read_adapter_config(checkpoint).method).domain_ids
    # the plain classifier needs the frozen base's features, taken before the adapters are injected
    classifier = _domain_classifier(base_model, gen, suite_dir, records, batch_size, seed, device) if moa else None
    model = load_adapters(base_model, checkpoint).to(device).eval() if checkpoint else base_model
    adapters = checkpoint is not None
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)
    rows = []
    bar = progress(len(records), f"evaluate {split}")
    for k in range(0, len(records), batch_size):
        chunk = records[k:k + batch_size]
        batch = {key: v.to(device) for key, v in gen(chunk).items()}
        routing = {key: batch.pop(key) for key in ROUTING_KEYS}
        kwargs = dict(max_new_tokens=max_new_tokens or max_target_length, do_sample=False, num_beams=num_beams,
                      **glm_format.generate_kwargs(tokenizer, fmt))
        with autocast, glm_format.generation(base_model, fmt):
            out = model.generate(**batch, **routing, **kwargs) if adapters else model.generate(**batch, **kwargs)
        last = _per_example(model.last_routing(), len(chunk)) if adapters else {}
        new = out if is_enc_dec else out[:, batch["input_ids"].shape[1]:]
        texts = tokenizer.batch_decode(new, skip_special_tokens=True)
        predicted = _predicted_domains(last)
        nlls = _reference_nll(model, score(chunk), adapters, is_enc_dec or fmt == "glm", device, autocast)
        # routing of the teacher-forced pass: the same prompt routing; MoE-LoRA's token weights over the sequence
        skills = _skill_weights(model.cfg.method, model.last_routing()) if adapters else None
        for i, (r, text) in enumerate(zip(chunk, texts)):
            row = {"id": r["id"], "task": r["task"], "task_id": r.get("task_id"), "domain_id": r.get("domain_id"),
                   "prediction": text.strip(), "references": r["references"],
                   "target_nll": nlls[i][0], "target_tokens": nlls[i][1]}
            if skills is not None:
                row["skill_weights"] = [round(float(x), 5) for x in skills[i]]
            if predicted is not None:
                row["predicted_domain"] = int(predicted[i])
            if classifier is not None:  # per example, so MoA Table 3 can report it per domain
                row["classifier_domain"] = int(classifier[k + i])
            rows.append(row)
        bar.update(len(chunk))
    bar.close()
    metrics = metrics_from_predictions(rows, xlingual_tokenizer)
    if classifier is not None:
        acc = router_accuracy([r["classifier_domain"] for r in rows],
                              [r["domain_id"] if r.get("domain_id") is not None else -1 for r in rows])
        if acc is not None:
            metrics["mean"]["classifier_accuracy"] = acc
    return rows, metrics


def metrics_from_predictions(rows: list[dict], xlingual_tokenizer: str | None = None) -> dict:
    """Everything in metrics.json except the MoA classifier, from predictions.jsonl rows alone."""
    metrics = grouped_metrics(rows, xlingual_tokenizer)
    metrics["n"] = len(rows)
    metrics["track"] = "xlingual" if xlingual_tokenizer else "default"
    mean = metrics["mean"]
    mean["bleu"] = bleu([r["prediction"] for r in rows], [r["references"] for r in rows])
    mean["perplexity"] = perplexity(sum(r["target_nll"] for r in rows), sum(r["target_tokens"] for r in rows))
    if any("predicted_domain" in r for r in rows):
        acc = router_accuracy([r.get("predicted_domain", -1) for r in rows],
                              [r["domain_id"] if r.get("domain_id") is not None else -1 for r in rows])
        if acc is not None:
            mean["router_accuracy"] = acc
    return metrics


def _reference_nll(model, batch: dict, adapters: bool, aligned: bool, device: str, autocast) -> list:
    """Per example: summed NLL of the first reference (+ eos) under teacher forcing, and its token count.
    aligned: labels sit under the logits that predict them (encoder-decoder, GLM); else shifted by one."""
    batch = {k: v.to(device) for k, v in batch.items()}
    routing = {k: batch.pop(k) for k in ROUTING_KEYS}
    labels = batch["labels"]
    with autocast:
        logits = (model(**batch, **routing) if adapters else model(**batch)).logits
    return [token_nll(logits[i:i + 1], labels[i:i + 1], shift=not aligned) for i in range(labels.shape[0])]


def _domain_classifier(base_model, gen, suite_dir, records, batch_size, seed, device):
    """MoA Table 3's comparison: logistic regression on the frozen base's pooled prompt features, fitted on the
    suite's training examples; its predicted domain for each evaluated example (None without two labelled domains)."""
    train = read_jsonl(Path(suite_dir) / "train.jsonl")

    def feats(rs):
        xs = [pooled_features(base_model, {k: v.to(device) for k, v in gen(rs[k:k + batch_size]).items()})
              for k in range(0, len(rs), batch_size)]
        ys = [r["domain_id"] if r.get("domain_id") is not None else -1 for r in rs]
        return torch.cat(xs).numpy(), np.array(ys)

    train_x, train_y = feats(train)
    return classifier_predictions(train_x, train_y, feats(records)[0], seed=seed)


def _skill_weights(method: str, last: dict):
    """Each example's skill weights in every router, concatenated (Figure 3, skill recovery): OrchMoE's
    alpha = w(X)^T W_hat, MoE-LoRA's token weights averaged over the sequence, MoA's router softmax. Poly/MHR route
    by task id: their allocation rows (routing.json) are the routing, not repeated per example."""
    if method in ("lora", "poly", "mhr"):
        return None
    groups = sorted(k for k, v in last.items() if "skill_weights" in v or "domain_probs" in v)
    if not groups:
        return None
    parts = [last[g].get("skill_weights", last[g].get("domain_probs")).float() for g in groups]
    return torch.cat([p.reshape(p.shape[0], -1) for p in parts], dim=-1).tolist()


def _per_example(last: dict, n: int) -> dict:
    """Routing read out on n * beams rows (decoder-only beam search expands the prompt before the prefill): the
    beams of an example repeat its row, so keep one row per example."""
    return {g: {k: t[:: t.shape[0] // n] if t.shape[0] > n and t.shape[0] % n == 0 else t for k, t in v.items()}
            for g, v in last.items()}


def _predicted_domains(last: dict):
    """MoA: the domain most blocks' routers chose for each example."""
    votes = [v["predicted_domain"] for v in last.values() if "predicted_domain" in v]
    if not votes:
        return None
    return torch.stack(votes).mode(dim=0).values.tolist()
