"""A frozen base linear (nn.Linear or GPT-2's fused Conv1D) plus a LoRA bank mixed by a router."""
from __future__ import annotations

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from .bank import LoRABank
from .fused_update import LinearPlusLowRank, fusable
from .routing import Router


def linear_dims(module: nn.Module) -> tuple[int, int]:
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if isinstance(module, Conv1D):  # GPT-2 stores the weight as (d_in, d_out)
        return module.weight.shape[0], module.weight.shape[1]
    raise TypeError(type(module).__name__)


class WrapsBase(nn.Module):
    """A module in place of a frozen linear `self.base`: models read e.g. `self.wo.weight.dtype` (T5)."""

    @property
    def weight(self) -> torch.Tensor:
        return self.base.weight

    @property
    def bias(self):
        return self.base.bias


class AdaptedLinear(WrapsBase):
    def __init__(self, base: nn.Module, bank: LoRABank, router: Router, mix: str):
        super().__init__()
        self.base = base
        self.bank = bank
        self.router = router if router.scope == "module" else None  # a shared block router is owned by the wrapper
        self._shared_router = [router]  # plain list: not registered twice as a submodule
        self.mix = mix

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        router = self._shared_router[0]
        w = router.weights(x)
        ctx = router.ctx
        if ctx is not None and not torch.is_grad_enabled():
            # Generation: sequence-level routing is one cached tensor for the whole call, so the merged / reshaped
            # bank matrices built from it are too; build them at the prompt, reuse them at every decoding step.
            # Token routing (a new w every call) and recomputed routing rebuild them: the memo is keyed on w itself.
            memo = ctx.plans.get(self)
            if memo is not None and memo[0] is w and memo[1] == x.shape[0]:
                plan = memo[2]
            else:
                plan = self.bank.plan(w, x.shape[0], self.mix)
                ctx.plans[self] = (w, x.shape[0], plan)
        else:
            plan = self.bank.plan(w, x.shape[0], self.mix)
            factors = self.bank.factors(plan)
            if factors is not None and fusable(self.base, x, factors[0]):  # training LoRA / Poly / MHR
                return LinearPlusLowRank.apply(x, self.base.weight, self.base.bias, *factors)
        out = self.base(x)
        delta, alpha = self.bank.apply_plan(x, plan)
        if delta.dtype != out.dtype:
            delta = delta.to(out.dtype)
        if out.shape != delta.shape:  # a fused slice (base: a zero scalar) or a broadcasting base: a new tensor
            return out + delta if alpha == 1.0 else torch.add(out, delta, alpha=alpha)
        # In place: the base output is fresh and no backward needs it (a linear's backward reads its input and
        # weight), so this saves one (B, L, d_out) allocation per adapted linear. The leftover scale (plain LoRA's
        # alpha / r) rides on the add: no extra pass over the output.
        return out.add_(delta) if alpha == 1.0 else out.add_(delta, alpha=alpha)
