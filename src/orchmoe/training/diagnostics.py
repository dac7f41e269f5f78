"""Router diagnostics while training: is the routing learning, uniform, or collapsed?

Every `log_every` steps, per transformer block (module-level routers of a block are averaged), from the last
micro-batch's routing and the router gradients before the optimiser step:
- alloc_entropy / alloc_dist_uniform: mean normalised entropy (1 = uniform) of the task-skill allocation rows
  (Poly, MHR, OrchMoE) and their total-variation distance from uniform (0 = uniform);
- weight_entropy / weight_dist_uniform: the same for the batch's per-example skill weights, noise-free (as at
  evaluation: OrchMoE's alpha = w(X) W_hat, Poly/MHR's task rows, MoE-LoRA's token weights averaged over the
  sequence, MoA's router softmax);
- weight_spread: sd of the per-example weights across the batch (mean over skills): 0 = every input routed alike;
- task_entropy (OrchMoE): normalised entropy of the task router's w(X) (0 = one abstract task per input);
  entropies and distances are taken over the shares |w_s| / sum |w|, the weights themselves when they are a
  distribution; OrchMoE's affine eq. 4 gives signed weights of any sum (docs/methods.md, ambiguity 5);
- load_<s>: mean weight of skill s over the batch; grad_norm: L2 norm of the block's router gradients.
"""
from __future__ import annotations

import logging
import math

import torch

from orchmoe.adapters import registry

log = logging.getLogger(__name__)

UNIFORM_TV = 0.05  # per-example skill weights this close to uniform (total variation) = "near-uniform"
SPREAD_MIN = 0.01  # sd across examples below this = "input-independent"


def _shares(p: torch.Tensor) -> torch.Tensor:
    """Each row of p (.., S) as shares |p_s| / sum |p|: p itself when it is a distribution."""
    p = p.float().abs()
    return p / p.sum(-1, keepdim=True).clamp_min(1e-12)


def _entropy(p: torch.Tensor) -> torch.Tensor:
    """Normalised entropy of the shares of each row of p (.., S), in [0, 1]."""
    p = _shares(p)
    S = p.shape[-1]
    return -(p * p.clamp_min(1e-12).log()).sum(-1) / math.log(S) if S > 1 else torch.zeros(p.shape[:-1])


def _tv_uniform(p: torch.Tensor) -> torch.Tensor:
    p = _shares(p)
    return 0.5 * (p - 1.0 / p.shape[-1]).abs().sum(-1)


def _routers(model) -> dict:
    """router name -> (block name, router module), each router once."""
    from orchmoe.adapters.model import block_of

    out = {}
    for name, layer in model.adapted.items():
        router = layer._shared_router[0]
        if router.name in out:
            continue
        block = router.name.replace("__", ".") if router.scope == "block" else block_of(model.base_model, name)
        out[router.name] = (block, router)
    return out


@torch.no_grad()
def router_diagnostics(model, step: int) -> list[dict]:
    """One row per block; empty for a method without routing (lora)."""
    method = registry.get(model.cfg.method)
    if not method.routed:
        return []
    readout = model.ctx.readout
    per_block: dict[str, list[dict]] = {}
    for name, (block, router) in _routers(model).items():
        row = {}
        if hasattr(router, "allocation"):
            S = model.cfg.n_skills
            alloc = router.allocation().reshape(-1, S)
            row["alloc_entropy"] = _entropy(alloc).mean().item()
            row["alloc_dist_uniform"] = _tv_uniform(alloc).mean().item()
        ro = readout.get(name, {})
        # the noise-free (evaluation-time) weights of this batch: Gumbel samples in training are not the routing
        if "task_weights" in ro and hasattr(router, "allocation"):  # orchmoe: alpha = w(X) W_hat
            w = ro["task_weights"].float() @ router.allocation().float()
        elif method.task_ids and model.ctx.task_ids is not None:  # the batch's task rows
            ids = model.ctx.task_ids.clamp_min(0).to(router.allocation().device)
            w = router.allocation().reshape(router.n_tasks, -1, model.cfg.n_skills)[ids]
        else:  # moe_lora: token weights averaged over the sequence; moa: the router's softmax
            w = ro.get("skill_weights", ro.get("domain_probs"))
        if w is not None:
            w = w.float().reshape(w.shape[0], -1, w.shape[-1])  # (B, heads or 1, S)
            row["weight_entropy"] = _entropy(w).mean().item()
            row["weight_dist_uniform"] = _tv_uniform(w).mean().item()
            row["weight_spread"] = w.std(0, unbiased=False).mean().item() if w.shape[0] > 1 else 0.0
            for s, v in enumerate(w.mean((0, 1)).tolist()):
                row[f"load_{s}"] = v
        if "task_weights" in ro:
            row["task_entropy"] = _entropy(ro["task_weights"]).mean().item()
        grads = [p.grad.float().pow(2).sum() for p in router.parameters() if p.grad is not None]
        row["grad_sq"] = torch.stack(grads).sum().item() if grads else 0.0
        per_block.setdefault(block, []).append(row)
    rows = []
    for block, parts in per_block.items():
        keys = sorted({k for p in parts for k in p})
        row = {"step": step, "block": block}
        for k in keys:
            vals = [p[k] for p in parts if k in p]
            if k == "grad_sq":
                row["grad_norm"] = round(math.sqrt(sum(vals)), 8)
            else:
                row[k] = round(sum(vals) / len(vals), 6)
        rows.append(row)
    return rows


def routing_warnings(method: str, rows: list[dict]) -> list[str]:
    """Warnings on the last logged step: near-uniform or input-independent per-example routing."""
    if not rows:
        return []
    last = max(r["step"] for r in rows)
    final = [r for r in rows if r["step"] == last and "weight_dist_uniform" in r]
    if not final:
        return []
    tv = sum(r["weight_dist_uniform"] for r in final) / len(final)
    spread = sum(r["weight_spread"] for r in final) / len(final)
    out = []
    if tv < UNIFORM_TV:
        out.append(f"{method}: near-uniform routing at step {last}: per-example skill weights are on average "
                   f"{tv:.3f} (total variation) from uniform (< {UNIFORM_TV}); the router did not learn a preference")
    if spread < SPREAD_MIN:
        out.append(f"{method}: input-independent routing at step {last}: sd of the skill weights across the batch "
                   f"is {spread:.4f} (< {SPREAD_MIN}); every example is routed alike")
    for w in out:
        log.warning(w)
    return out
