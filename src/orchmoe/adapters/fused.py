"""Separate LoRA banks on the equal output slices of one fused linear: target `"query_key_value:q,k,v"`.

GLM's `query_key_value` and GPT-2's `c_attn` compute q, k and v with one weight; the papers adapt q, k and v as three
LoRAs (OrchMoE Table 4's ratios count three 4096 -> 4096 adapters). `name:a,b,c` puts one bank (and, for per-module
routers, one router) on each of the len(slices) equal, contiguous output blocks, in the order given. The result
equals three separate linears holding the weight's row blocks, each with its own LoRA (tests/adapters/test_fused.py).
"""
from __future__ import annotations

import torch
from torch import nn

from orchmoe.errors import ConfigError

from .layer import AdaptedLinear, WrapsBase

RESERVED = {"base", "weight", "bias", "slice_names"}


def parse_target(target: str) -> tuple[str, list[str] | None]:
    """'query_key_value:q,k,v' -> ('query_key_value', ['q', 'k', 'v']); 'q' -> ('q', None)."""
    if ":" not in target:
        return target, None
    name, _, spec = target.partition(":")
    slices = [s.strip() for s in spec.split(",")]
    if (not name or len(slices) < 2 or len(set(slices)) != len(slices)
            or not all(s.isidentifier() and s not in RESERVED for s in slices)):
        raise ConfigError(f"target_modules: {target!r} must be 'module:slice,slice[,...]' with two or more distinct "
                          f"slice names (identifiers, not {sorted(RESERVED)})")
    return name, slices


def fused_targets(targets) -> dict[str, list[str] | None]:
    """Leaf module name -> its slice names (None: adapt the whole module). A regex string has no slices."""
    if isinstance(targets, str):
        return {}
    out: dict[str, list[str] | None] = {}
    for t in targets:
        name, slices = parse_target(t)
        out[name] = slices
    return out


class _NoBase(nn.Module):
    """The base of a slice: nothing (the fused linear runs once, in FusedAdaptedLinear). A zero-dim zero of the
    input's dtype, so AdaptedLinear's `base(x) + update` returns the update alone, cast like any adapted output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros((), dtype=x.dtype, device=x.device)


class SliceAdapter(AdaptedLinear):
    """The LoRA bank and router of one output slice. It reuses AdaptedLinear's forward unchanged (so the bank's
    fast paths apply to slices too) on a base that contributes nothing: its output is the slice's update."""

    def __init__(self, bank, router, mix: str):
        super().__init__(_NoBase(), bank, router, mix)

    @property
    def weight(self):
        raise AttributeError("a fused slice has no base weight of its own")

    @property
    def bias(self):
        raise AttributeError("a fused slice has no base bias of its own")


class FusedAdaptedLinear(WrapsBase):
    """A frozen fused linear plus one SliceAdapter per output slice, registered under the slice names."""

    def __init__(self, base: nn.Module, slices: dict[str, SliceAdapter]):
        super().__init__()
        self.base = base
        self.slice_names = list(slices)
        for name, adapter in slices.items():
            self.add_module(name, adapter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        delta = torch.cat([getattr(self, n)(x) for n in self.slice_names], dim=-1)
        return out + delta.to(out.dtype)
