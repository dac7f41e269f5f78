"""A frozen base linear (nn.Linear or GPT-2's fused Conv1D) plus a LoRA bank mixed by a router."""
from __future__ import annotations

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from .bank import LoRABank
from .routing import Router


def linear_dims(module: nn.Module) -> tuple[int, int]:
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if isinstance(module, Conv1D):  # GPT-2 stores the weight as (d_in, d_out)
        return module.weight.shape[0], module.weight.shape[1]
    raise TypeError(type(module).__name__)


class AdaptedLinear(nn.Module):
    def __init__(self, base: nn.Module, bank: LoRABank, router: Router, mix: str):
        super().__init__()
        self.base = base
        self.bank = bank
        self.router = router if router.scope == "module" else None  # a shared block router is owned by the wrapper
        self._shared_router = [router]  # plain list: not registered twice as a submodule
        self.mix = mix

    @property
    def weight(self) -> torch.Tensor:  # models read e.g. `self.wo.weight.dtype` (T5)
        return self.base.weight

    @property
    def bias(self):
        return self.base.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        w = self._shared_router[0].weights(x)
        return out + self.bank(x, w, self.mix).to(out.dtype)
