"""PEFT in and out: a trained bank as PEFT LoRA / Poly folders, and PEFT LoRA folders as skills.

Sequence-level routing makes every routed method exportable exactly as one plain LoRA per routing decision:
with output mixing (OrchMoE, MoA) sum_s w_s B_s A_s x is one LoRA of rank S*r (the A's stacked, each B scaled by
its weight; skills with weight 0 are dropped, so a MoA domain is a rank-r LoRA); with weight mixing
(Poly, MHR) the task's merged A = sum_s w_s A_s and B = sum_s w_s B_s (per split for MHR) are a plain rank-r LoRA.
Scaling travels as PEFT's lora_alpha = scaling * r, so PEFT's alpha / r gives back the same factor. Fused-slice
targets ('query_key_value:q,k,v') leave as one LoRA on the fused linear (PEFT adapts whole modules).

PEFT warns about unknown keys in adapter_config.json ("upgrade PEFT"), so what a folder was merged from (run, task,
routing weights, md5s) goes into a sidecar, `orchmoe_export.json`, that PEFT and servers ignore.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers.pytorch_utils import Conv1D

from orchmoe.errors import ConfigError
from orchmoe.io import atomic_path, md5_file

PEFT_CONFIG = "adapter_config.json"
PEFT_WEIGHTS = "adapter_model.safetensors"
SIDECAR = "orchmoe_export.json"


def fused_parent(model, name: str):
    """The fused linear a slice LoRA belongs to (target 'query_key_value:q,k,v'), or None for a plain linear."""
    parent = name.rpartition(".")[0]
    module = model.base_model.get_submodule(parent) if parent else None
    return module if getattr(module, "slice_names", None) else None


def peft_layers(model, layers: dict) -> dict:
    """PEFT adapts whole modules: the slice LoRAs of a fused linear become one LoRA on it, exactly: A stacked,
    B block-diagonal (slice i's update lands in output block i)."""
    out, fused = {}, {}
    for name, AB in layers.items():
        if fused_parent(model, name) is None:
            out[name] = AB
        else:
            parent, _, piece = name.rpartition(".")
            fused.setdefault(parent, {})[piece] = AB
    for parent, parts in fused.items():
        order = model.base_model.get_submodule(parent).slice_names
        out[parent] = (torch.cat([parts[s][0] for s in order]), torch.block_diag(*[parts[s][1] for s in order]))
    return out


def peft_target_modules(model, names) -> list[str]:
    """The adapted modules as PEFT's target_modules: leaf names where they select exactly these modules (PEFT
    matches a list entry against a module name's suffix), else every module's full name."""
    adapted = set(names)
    leaves = {n.rsplit(".", 1)[-1] for n in adapted}
    inside = tuple(n + "." for n in adapted)  # the wrapper's own children (base, bank, router) are not candidates
    selected = {n for n, _ in model.base_model.named_modules()
                if n and not n.startswith(inside) and n.rsplit(".", 1)[-1] in leaves}
    return sorted(leaves) if selected == adapted else sorted(adapted)


def base_name_or_path(model) -> str | None:
    """What PEFT and servers load the base from: a local folder as an absolute path (a relative one would resolve
    against whatever folder the folder is served from), a hub id as it is, None for a tiny base (no files)."""
    name = getattr(model.base_model.config, "_name_or_path", None) or None
    if name is not None and Path(name).exists():
        return str(Path(name).resolve())
    return name


def _common_config(model, names) -> dict:
    return {
        "target_modules": peft_target_modules(model, names), "inference_mode": True,
        "task_type": "SEQ_2_SEQ_LM" if model.is_encoder_decoder else "CAUSAL_LM",
        "base_model_name_or_path": base_name_or_path(model),
    }


def _write(path, config: dict, state: dict, meta: dict | None) -> Path:
    """One folder, written atomically: PEFT's two files plus the sidecar (with the md5s of the two). An existing
    `path` is replaced only if it holds nothing but these files (never a training run or anything else)."""
    path = Path(path)
    if path.is_symlink() or path.is_file():
        raise ConfigError(f"{path}: exists and is not a folder; refusing to replace it")
    if path.is_dir():
        other = sorted(p.name for p in path.iterdir() if p.name not in (PEFT_CONFIG, PEFT_WEIGHTS, SIDECAR))
        if other:
            raise ConfigError(f"{path}: holds {other[0]}, which a PEFT export does not write; refusing to replace it")
    with atomic_path(path) as tmp:
        tmp.mkdir()
        save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(tmp / PEFT_WEIGHTS))
        (tmp / PEFT_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        if meta is not None:
            meta = {**meta, "files": {n: md5_file(tmp / n) for n in (PEFT_CONFIG, PEFT_WEIGHTS)}}
            (tmp / SIDECAR).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


def write_peft_lora(path, model, layers: dict, scaling: float, meta: dict | None = None) -> Path:
    """layers: {module name: (A (r, d_in), B (d_out, r))}; scaling: the factor on B A x. Layers whose rank differs
    from the most common one get PEFT's rank_pattern / alpha_pattern (keys: full module names)."""
    layers = peft_layers(model, layers)
    ranks = {name: A.shape[0] for name, (A, _) in layers.items()}
    r = Counter(ranks.values()).most_common(1)[0][0]
    state = {}
    for name, (A, B) in layers.items():
        state[f"base_model.model.{name}.lora_A.weight"] = A
        state[f"base_model.model.{name}.lora_B.weight"] = B
    bases = [model.base_model.get_submodule(name).base for name in layers]
    config = {**_common_config(model, layers), "peft_type": "LORA", "r": r, "lora_alpha": scaling * r,
              "bias": "none", "lora_dropout": model.cfg.dropout,
              "fan_in_fan_out": any(isinstance(b, Conv1D) for b in bases)}
    other = {name: k for name, k in sorted(ranks.items()) if k != r}
    if other:
        config["rank_pattern"] = other
        config["alpha_pattern"] = {name: scaling * k for name, k in other.items()}
    return _write(path, config, state, meta)


# -- what to merge ---------------------------------------------------------------------------------------------
def skill_layers(model, skill: int) -> dict:
    """One skill of every bank (method lora: skill 0 is the LoRA)."""
    if not 0 <= skill < model.cfg.n_skills:
        raise ConfigError(f"export: skill={skill} is not in [0, {model.cfg.n_skills})")
    return {n: (layer.bank.lora_A[skill], layer.bank.lora_B[skill]) for n, layer in model.adapted.items()}


@torch.no_grad()
def task_layers(model, task_id: int) -> dict:
    """Poly / MHR: the evaluation-time merge for one task, as in LoRABank._merge_weights (a rank-r LoRA)."""
    out = {}
    for name, layer in model.adapted.items():
        bank = layer.bank
        S, r, H = bank.n_skills, bank.rank, bank.n_splits
        w = layer.router.allocation()[task_id].view(H, S)
        A = torch.einsum("hs,srhi->rhi", w, bank.lora_A.view(S, r, H, bank.d_in // H)).flatten(1)
        B = torch.einsum("hs,shor->hor", w, bank.lora_B.view(S, H, bank.d_out // H, r)).flatten(0, 1)
        out[name] = (A, B)
    return out


@torch.no_grad()
def mixed_layers(model, weights: dict) -> dict:
    """Output mixing with one weight vector (S,) per router group: sum_s w_s B_s A_s = [w_s B_s]_s [A_s]_s, over the
    skills with a nonzero weight in that layer's group (a MoA domain: rank r; OrchMoE: rank S*r)."""
    out = {}
    for name, layer in model.adapted.items():
        bank = layer.bank
        w = weights[layer._shared_router[0].name].to(bank.lora_B.dtype)
        keep = w != 0
        A = bank.lora_A[keep].flatten(0, 1)  # (k*r, d_in)
        B = (bank.lora_B * w[:, None, None])[keep].permute(1, 0, 2).flatten(1)  # (d_out, k*r)
        out[name] = (A, B)
    return out


@torch.no_grad()
def prompt_routing(model, batch: dict) -> tuple[dict, dict]:
    """The per-sequence routing weights every block router used for a batch of prompts ({group: (N, S)}), and the
    routers' read-outs (OrchMoE task weights, MoA predicted domains). Exact: read from the routing cache itself."""
    batch = dict(batch)
    routing = {k: batch.pop(k) for k in ("task_ids", "domain_ids", "prompt_mask")}
    if "generation_attention_mask" in batch:  # GLM's format: the context + <sop> pass that generation starts with
        from orchmoe.data.glm_format import forward_inputs

        inputs = forward_inputs(batch)
    else:
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
    if model.is_encoder_decoder:  # decoder blocks route from the encoder's output: any decoder input will do
        start = model.base_model.config.decoder_start_token_id or 0
        inputs["decoder_input_ids"] = torch.full((inputs["input_ids"].shape[0], 1), start)
    with model.routing(**routing) as ctx:
        model.base_model(**inputs)
        weights = {k: v.detach().float().clone() for k, v in ctx.cache.items()}
        readout = model.last_routing()
    return weights, readout


# -- Poly / MHR as PEFT's Poly ---------------------------------------------------------------------------------
def write_peft_poly(path, model, meta: dict | None = None) -> Path:
    """PEFT's PolyConfig (poly_type "poly"; MHR = n_splits > 1): the same skills and allocation logits.

    PEFT stores A as (splits, skills, d_in / splits, r) and B as (splits, skills, r, d_out / splits) and scales by
    1 / r; a configured alpha is folded into B. PEFT's Poly wraps nn.Linear only (not GPT-2's Conv1D)."""
    cfg = model.cfg
    if cfg.method not in ("poly", "mhr"):
        raise ConfigError(f"export: PEFT's Poly format holds methods poly and mhr, not {cfg.method!r}")
    state = {}
    for name, layer in model.adapted.items():
        if fused_parent(model, name) is not None:
            raise ConfigError(f"export: {name} is a slice of a fused linear; PEFT's Poly has one bank per module "
                              "(export one LoRA per task instead: --all-tasks)")
        if isinstance(layer.base, Conv1D):
            raise ConfigError(f"export: PEFT's Poly supports nn.Linear only; {name} is a GPT-2 Conv1D "
                              "(export one LoRA per task instead: --all-tasks)")
        bank = layer.bank
        S, r, H = bank.n_skills, bank.rank, bank.n_splits
        fold = bank.scaling * r  # PEFT divides by r
        prefix = f"base_model.model.{name}."
        state[prefix + "poly_lora_A"] = bank.lora_A.view(S, r, H, bank.d_in // H).permute(2, 0, 3, 1)
        state[prefix + "poly_lora_B"] = (bank.lora_B * fold).view(S, H, bank.d_out // H, r).permute(1, 0, 3, 2)
        state[prefix + "poly_router.module_logits"] = allocation_logits(layer.router)
    config = {**_common_config(model, model.adapted), "peft_type": "POLY", "poly_type": "poly", "r": cfg.rank,
              "n_tasks": cfg.n_tasks, "n_skills": cfg.n_skills, "n_splits": cfg.n_splits, "init_weights": True}
    return _write(path, config, state, meta)


@torch.no_grad()
def allocation_logits(router) -> torch.Tensor:
    """Logits that PEFT's Poly turns into the router's evaluation-time allocation (sigmoid, then rows normalised).

    A learned router's own logits; a fixed allocation (the oracle / per-task references, whose module_logits are
    frozen at their random init and never used) as logit(c w) with c = 1/(2 max_s w_s), so sigmoid gives back c w
    and the normalisation w itself; a zero weight as -1e4 (sigmoid exactly 0 in float32)."""
    if getattr(router, "oracle", None) is None:
        return router.module_logits
    w = router.allocation().float()
    z = w / (2 * w.amax(-1, keepdim=True).clamp_min(1e-30))
    return torch.logit(z).clamp_min(-1e4).to(router.module_logits.dtype)


# -- PEFT LoRA folders in --------------------------------------------------------------------------------------
def split_fused(model, layers: dict) -> dict:
    """A LoRA on a whole fused linear, onto that linear's slice banks: slice i keeps A and B's output block i (exact)."""
    out = {}
    for name, (A, B) in layers.items():
        try:
            slices = getattr(model.base_model.get_submodule(name), "slice_names", None)
        except AttributeError:  # not a module of this model: the target check names it
            slices = None
        if not slices:
            out[name] = (A, B)
            continue
        if B.shape[0] % len(slices):
            raise ConfigError(f"{name}: lora_B has {B.shape[0]} rows, not {len(slices)} equal slices {slices}")
        out.update({f"{name}.{s}": (A, b) for s, b in zip(slices, B.chunk(len(slices)))})
    return out


def is_peft_folder(path) -> bool:
    return (Path(path) / PEFT_CONFIG).is_file()


def read_peft_lora(path) -> tuple[dict, float]:
    """A PEFT LoRA folder -> ({module name: (A, B)}, scaling). One line naming the folder for what does not fit."""
    path = Path(path)
    try:
        config = json.loads((path / PEFT_CONFIG).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path / PEFT_CONFIG}: not a readable PEFT adapter config ({e})") from None
    if config.get("peft_type") != "LORA":
        raise ConfigError(f"{path}: a skill must be a PEFT LoRA folder, got peft_type={config.get('peft_type')!r}")
    for key in ("rank_pattern", "alpha_pattern"):
        if config.get(key):
            raise ConfigError(f"{path}: PEFT {key} is not supported for skills (one rank and alpha for all modules)")
    if config.get("use_dora"):
        raise ConfigError(f"{path}: DoRA adapters are not plain LoRAs (use_dora=true)")
    weights = path / PEFT_WEIGHTS
    if not weights.is_file():
        raise ConfigError(f"{weights}: PEFT LoRA weights not found")
    state = load_file(str(weights))
    r, alpha = int(config["r"]), float(config.get("lora_alpha", config["r"]))
    scaling = alpha / r ** 0.5 if config.get("use_rslora") else alpha / r
    layers = {}
    for key, A in state.items():
        if key.endswith(".lora_A.weight"):
            name = key[: -len(".lora_A.weight")].removeprefix("base_model.model.")
            B = state.get(key.replace(".lora_A.", ".lora_B."))
            if B is None:
                raise ConfigError(f"{weights}: {name} has lora_A but no lora_B")
            layers[name] = (A, B)
    if not layers:
        raise ConfigError(f"{weights}: no LoRA weights (keys ending in .lora_A.weight)")
    return layers, scaling
