"""Baichuan-7B's layout (MoA's base, docs/methods.md ambiguity table) as a native transformers model.

Baichuan-7B is LLaMA with q, k and v computed by one fused linear, `self_attn.W_pack` (d -> 3d, contiguous q | k | v).
transformers has no class for it (the checkpoint ships remote code), so this file reuses LlamaForCausalLM and packs
each attention's q_proj / k_proj / v_proj into W_pack; the attention code then reads its q, k, v as slices of one
W_pack call. Module names and parameter count are Baichuan-7B's (7,000,559,616 from `architectures/baichuan-7b.json`),
so `orchmoe params` counts MoA's "143M per LoRA" on it, and `build_tiny("baichuan")` is a tiny twin that every method
attaches to with MoA's targets (W_pack, o_proj, gate_proj, up_proj, down_proj).
"""
from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM


class BaichuanLayoutConfig(LlamaConfig):
    model_type = "orchmoe_baichuan"


class _PackedSlice:
    """Stands in for q_proj / k_proj / v_proj (a plain object, not a module): a slice of W_pack's output. The first
    slice runs W_pack (adapters included) once; the others reuse that output; the last one drops it."""

    def __init__(self, attn: nn.Module, start: int, stop: int, last: bool):
        self.attn, self.start, self.stop, self.last = attn, start, stop, last

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        cached = self.attn.__dict__.get("_packed")
        if cached is None or cached[0] is not x:
            cached = (x, self.attn.W_pack(x))
            self.attn.__dict__["_packed"] = cached
        if self.last:
            self.attn.__dict__["_packed"] = None
        return cached[1][..., self.start:self.stop]


def _pack(attn: nn.Module) -> None:
    parts = [attn.q_proj, attn.k_proj, attn.v_proj]
    packed = nn.Linear(parts[0].in_features, sum(p.out_features for p in parts), bias=parts[0].bias is not None,
                       device=parts[0].weight.device, dtype=parts[0].weight.dtype)
    with torch.no_grad():
        packed.weight.copy_(torch.cat([p.weight for p in parts]))  # keeps the initialisation (and its seed)
        if packed.bias is not None:
            packed.bias.copy_(torch.cat([p.bias for p in parts]))
    bounds, start = [], 0
    for p in parts:
        bounds.append((start, start + p.out_features))
        start += p.out_features
    for name in ("q_proj", "k_proj", "v_proj"):
        delattr(attn, name)
    attn.W_pack = packed
    for i, (name, (a, b)) in enumerate(zip(("q_proj", "k_proj", "v_proj"), bounds)):
        object.__setattr__(attn, name, _PackedSlice(attn, a, b, last=i == 2))


class BaichuanLayoutForCausalLM(LlamaForCausalLM):
    config_class = BaichuanLayoutConfig

    def __init__(self, config: BaichuanLayoutConfig):
        super().__init__(config)
        for layer in self.model.layers:
            _pack(layer.self_attn)


AutoConfig.register(BaichuanLayoutConfig.model_type, BaichuanLayoutConfig, exist_ok=True)
AutoModelForCausalLM.register(BaichuanLayoutConfig, BaichuanLayoutForCausalLM, exist_ok=True)
