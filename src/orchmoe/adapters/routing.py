"""What routers need per call, and the base class every method's router derives from.

The wrapper opens one `RoutingContext` per forward / generate call. Sequence-level routing (poly, mhr, orchmoe,
moa) is computed once per call and cached here, so generation with a KV cache reuses the prompt's routing at every
decoding step; token-level routing (moe_lora) is computed at every call of its layer.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, fields

import torch
from torch import nn

from orchmoe.errors import ConfigError


@dataclass
class RoutingContext:
    task_ids: torch.Tensor | None = None     # (B,) long, -1 = unknown
    domain_ids: torch.Tensor | None = None   # (B,) long, -1 = unknown
    prompt_mask: torch.Tensor | None = None  # (B, L_prompt): 1 on prompt tokens, 0 on padding and targets
    encoder_hidden: torch.Tensor | None = None  # encoder-decoder: the encoder's output, read by decoder blocks
    encoder_features: torch.Tensor | None = None  # its parameter-free router features, shared by all decoder blocks
    cache: dict = field(default_factory=dict)   # group name -> per-sequence routing weights
    plans: dict = field(default_factory=dict)   # adapted linear -> its bank plan, reused through a no-grad call
    rows_of_tasks: dict = field(default_factory=dict)  # (n_tasks, device) -> `task_rows`, checked once per call
    losses: dict = field(default_factory=dict)  # loss name -> list of per-group tensors
    readout: dict = field(default_factory=dict)  # group name -> routing of this call, for figures / router accuracy

    def snapshot(self) -> dict:
        """The context as a block sees it on entry: a checkpointed block recomputed in backward (after this call's
        context was cleared) must see the same routing again."""
        return {f.name: _copied(getattr(self, f.name)) for f in fields(self)}

    @contextlib.contextmanager
    def restored(self, snapshot: dict):
        """The context as in `snapshot` for the body, then back as it was: what a recomputation adds (routing
        losses, readouts) is dropped, so nothing it built outlives the backward pass."""
        current = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in snapshot.items():
            setattr(self, name, _copied(value))
        try:
            yield
        finally:
            for name, value in current.items():
                setattr(self, name, value)

    def add_loss(self, name: str, value: torch.Tensor) -> None:
        self.losses.setdefault(name, []).append(value)

    def task_rows(self, n_tasks: int, device, who: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """For routers that look rows up by task id: (row per example, the mask of unknown tasks or None if none).

        Unknown tasks (-1) read row 0 and are replaced by the caller. Checked once per forward / generate call for
        all routers alike (each check is a host sync; a T5 step has 36 routers)."""
        if self.task_ids is None:
            raise ConfigError(f"{who}: task_ids are required (Poly/MHR route by task id)")
        rows = self.rows_of_tasks.get((n_tasks, device))
        if rows is None:
            ids = self.task_ids
            if (ids < -1).any() or (ids >= n_tasks).any():
                raise ConfigError(f"{who}: task_ids must be in [0, n_tasks={n_tasks}) or -1 (unknown task); "
                                  f"got {ids.tolist()}")
            ids = ids.to(device)
            unknown = ids < 0
            rows = self.rows_of_tasks[(n_tasks, device)] = (ids.clamp_min(0), unknown if unknown.any() else None)
        return rows


def _copied(value):
    if isinstance(value, dict):  # one level deeper for the lists of `losses`
        return {k: list(v) if isinstance(v, list) else v for k, v in value.items()}
    return value


def masked_rms_norm(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Parameter-free RMS norm: q/k/v of pre-LN blocks see norm(x) * gain; the residual stream x is unnormalised."""
    if x.dtype == torch.float32:  # one fused kernel (and backward) instead of five element-wise passes
        return torch.nn.functional.rms_norm(x, x.shape[-1:], eps=eps)
    return x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps).to(x.dtype)


def self_attention_pool(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """mean over prompt tokens i of (softmax(X X^T / sqrt(d)) X + X)_i, keys restricted to prompt tokens (B, d).

    Only the pooled vector is needed, so the mean is taken before the value product: with m the prompt mask and
    n its count, mean_i (P X + X)_i = (m^T (P + I) / n) X. That is eq. 5 exactly, without the (B, L, d) attention
    output and its backward (about half the cost of a fused attention kernel's forward + backward).
    """
    used = mask.bool().any(0).nonzero()
    if len(used):  # positions after the batch's last prompt token (decoder-only targets) add nothing: cut them
        last = int(used[-1]) + 1
        x, mask = x[:, :last], mask[:, :last]
    keys = mask.bool()
    keys = keys | ~keys.any(1, keepdim=True)  # a row without prompt tokens attends everywhere instead of to NaN
    bias = torch.zeros(keys.shape, dtype=x.dtype, device=x.device).masked_fill_(~keys, float("-inf"))
    p = torch.softmax(torch.baddbmm(bias[:, None, :], x, x.transpose(1, 2), alpha=x.shape[-1] ** -0.5), dim=-1)
    m = mask.to(x.dtype)[:, None, :]  # (B, 1, L)
    n = m.sum(-1, keepdim=True).clamp_min(1.0)
    return (torch.bmm(m, p).add_(m).div_(n) @ x).squeeze(1)


def mean_pool(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(x.dtype).unsqueeze(-1)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


def sequence_mask(hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The prompt mask aligned to `hidden` (B, L, d): beams repeat rows; a training batch adds target positions."""
    B, L = hidden.shape[:2]
    if mask is None:
        return torch.ones(B, L, dtype=torch.long, device=hidden.device)
    if mask.shape[0] != B:
        mask = mask.repeat_interleave(B // mask.shape[0], dim=0)
    if mask.shape[1] < L:  # decoder-only training: prompt + target tokens, the prompt mask covers the prompt
        mask = torch.nn.functional.pad(mask, (0, L - mask.shape[1]))
    return mask[:, :L].to(hidden.device)


class Router(nn.Module):
    """Makes the mixing weights over a LoRA bank.

    scope: "block" (one router per transformer block, shared by that block's adapted linears; reads the block's
    input hidden states) or "module" (one router per adapted linear).
    """

    scope = "module"
    reads_hidden = False  # block routers that read the block's hidden states (orchmoe, moa)

    def __init__(self):
        super().__init__()
        self.ctx: RoutingContext | None = None
        self.name = ""

    def weights(self, x: torch.Tensor) -> torch.Tensor | None:
        """Mixing weights for the layer input x: None, (B, S), (B, H, S) or (B, L, S)."""
        raise NotImplementedError

    def features(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Block routers: the parameter-free per-sequence summary of the block input over prompt tokens (B, d).

        It has no parameters, so T5 decoder blocks (which all read the encoder output) compute it once per call.
        """
        raise NotImplementedError

    def route_features(self, features: torch.Tensor) -> torch.Tensor:
        """Block routers: per-sequence mixing weights (B, S) from `features`."""
        raise NotImplementedError

    def once_per_call(self, compute) -> torch.Tensor:
        """Per-sequence weights of a module router: computed at its first call in a forward / generate call, then
        reused (every decoding step of a generate call reads the same tensor)."""
        if self.ctx is None:
            return compute()
        w = self.ctx.cache.get(self.name)
        if w is None:
            w = self.ctx.cache[self.name] = compute()
        return w

    def cached(self) -> torch.Tensor:
        w = self.ctx.cache.get(self.name) if self.ctx is not None else None
        if w is None:
            raise RuntimeError(f"router {self.name}: no routing for this call (forward called outside the wrapper?)")
        return w


class PromptRouter(Router):
    """A block router that reads the block's prompt hidden states once per call (OrchMoE, MoA)."""

    scope = "block"
    reads_hidden = True
    mix = "outputs"

    def weights(self, x):
        return self.cached()
