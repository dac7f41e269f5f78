"""How far an exported PEFT folder is from the routed run it came from, measured in PEFT itself.

Each folder is loaded with `PeftModel` on a freshly loaded base (nothing of this project's code in between) and
compared with the run on prompts of the suite's eval split: the run generates a greedy continuation, then both
score prompt + continuation (teacher-forced), and the largest |logit difference| over every scored position is the
folder's error. Prompts the run routes exactly as the folder was merged (a MoA domain chosen by every block; for
Poly/MHR, LoRA and `--prompt` exports every prompt) are counted apart: there an exact export must agree.
"""
from __future__ import annotations

import torch

from orchmoe.io import md5_file

NEW_TOKENS = 8  # greedy tokens the run continues each prompt with; both models are scored on them
SAME_ROUTING_TOL = 1e-6  # routing weights this close to the folder's are "the same routing"


def eval_records(run, merged_from: dict, n: int) -> dict:
    """The prompts an export is checked on (at most n): {"records", "which" (how they were chosen, in words),
    "file"}."""
    from orchmoe.io import read_jsonl

    if "prompt" in merged_from:
        return {"records": [{"prompt": merged_from["prompt"]}], "which": "the exported prompt", "file": None}
    file = run.data / "eval.jsonl" if run.data is not None else None
    if file is None or not file.is_file():
        return {"records": [], "which": f"no eval split ({file or 'run.json names no suite: pass --data'})",
                "file": None}
    rows = read_jsonl(file)
    names = getattr(run.model.cfg, "task_names", None)
    if names:  # the oracle / per-task references index tasks by their own name list, as `orchmoe evaluate` does
        rows = [{**r, "task_id": names.index(r["task"])} if r.get("task") in names else r for r in rows]
    if "task" in merged_from:
        rows, which = [r for r in rows if r.get("task") == merged_from["task"]], f"task {merged_from['task']}"
        rows = [{**r, "task_id": merged_from["task_id"]} for r in rows]
    elif "domain" in merged_from:
        rows, which = [r for r in rows if r.get("domain_id") == merged_from["domain_id"]], \
            f"domain {merged_from['domain']}"
    else:
        which = "any task"
    return {"records": rows[:n], "which": f"the first {min(n, len(rows))} eval prompts of {which}", "file": file}


def _inputs(run, batch: dict, out: torch.Tensor) -> tuple[dict, torch.Tensor]:
    """Prompt + the run's continuation as teacher-forced inputs, and the positions to compare."""
    if run.model.is_encoder_decoder:
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "decoder_input_ids": out}
        return inputs, torch.ones(out.shape, dtype=torch.bool)
    new = out.shape[1] - batch["input_ids"].shape[1]
    mask = torch.cat([batch["attention_mask"], torch.ones(out.shape[0], new, dtype=batch["attention_mask"].dtype)], 1)
    return {"input_ids": out, "attention_mask": mask}, mask.bool()


@torch.no_grad()
def measure(run, folders: dict, specs: dict) -> dict:
    """folders: {name: PEFT folder}; specs: {name: {**eval_records(...), "routing" ({group: (S,)} or None),
    "task_ids" (PEFT Poly: pass them)}} -> {name: the sidecar's "check"}."""
    import peft

    from orchmoe.models.loading import load_base
    from orchmoe.training.cli import base_spec

    base, _ = load_base(base_spec(run.base))
    model, results = None, {}
    for i, (name, folder) in enumerate(folders.items()):
        spec = specs[name]
        records = spec["records"]
        if not records:
            results[name] = {"measured": False, "why": f"no prompts to check on: {spec['which']}"}
            continue
        batch = run.collate(records)
        if "generation_attention_mask" in batch:
            results[name] = {"measured": False, "why": "GLM's input layout is not checked against PEFT"}
            continue
        key = f"a{i}"
        if model is None:
            model = peft.PeftModel.from_pretrained(base, str(folder), adapter_name=key).eval()
        else:
            model.load_adapter(str(folder), adapter_name=key)
        model.set_adapter(key)
        routing = {k: batch.pop(k) for k in ("task_ids", "domain_ids", "prompt_mask")}
        out = run.model.generate(**batch, **routing, max_new_tokens=NEW_TOKENS, do_sample=False,
                                 pad_token_id=run.tokenizer.pad_token_id)
        inputs, compare = _inputs(run, batch, out)
        routed = run.model(**inputs, **routing).logits.float()
        exported = model(**inputs, **({"task_ids": routing["task_ids"]} if spec["task_ids"] else {})).logits.float()
        with model.disable_adapter():
            plain = model(**inputs).logits.float()
        delta = ((routed - exported).abs().amax(-1) * compare).amax(-1)  # per prompt
        effect = ((routed - plain).abs().amax(-1) * compare).amax(-1)
        same = torch.ones(len(records), dtype=torch.bool)
        if spec["routing"] is not None:
            weights, _ = run.routing([r["prompt"] for r in records])
            for g, w in weights.items():
                same &= (w - spec["routing"][g].to(w)).abs().amax(-1) <= SAME_ROUTING_TOL
        results[name] = {
            "measured": True, "prompts": {"path": str(spec["file"].resolve()) if spec["file"] else None,
                                          "md5": md5_file(spec["file"]) if spec["file"] else None,
                                          "n": len(records), "which": spec["which"]},
            "new_tokens": NEW_TOKENS,
            "max_abs_delta_logit": round(float(delta.max()), 6),
            "max_abs_adapter_effect": round(float(effect.max()), 6),
            "same_routing": {"n": int(same.sum()),
                             "max_abs_delta_logit": round(float(delta[same].max()), 6) if same.any() else None},
        }
    return results
