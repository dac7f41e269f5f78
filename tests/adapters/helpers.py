"""Small builders shared by the adapter tests."""
from __future__ import annotations

import torch

from orchmoe.adapters import attach_adapters, registry
from orchmoe.models.tiny import build_tiny

TARGETS = {"t5": ["q", "k", "v"], "llama": ["q_proj", "k_proj", "v_proj"], "gpt2": ["c_attn"],
           "glm": ["query_key_value:q,k,v"],  # glm: the GLM layout's fused projection as three LoRAs
           "baichuan": ["W_pack", "o_proj", "gate_proj", "up_proj", "down_proj"]}  # MoA's base: every linear
METHODS = list(registry.methods())  # the registry (adapters/registry.py): a new method is tested everywhere


def method_config(method: str, arch: str, **overrides) -> dict:
    cfg = {"method": method, "target_modules": TARGETS[arch], "rank": 4}
    spec = registry.get(method)
    if spec.uses_n_tasks or spec.task_ids:
        cfg["n_tasks"] = 3
    if spec.multi_head:
        cfg["n_splits"] = 2
    cfg.update(overrides)
    return cfg


def adapted(arch: str, method: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)  # LoRA A and router inits draw from the global generator: same model whatever ran before
    return attach_adapters(build_tiny(arch, seed=seed), method_config(method, arch, **overrides))


def randomise_B(model, std: float = 0.3, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g) * std)
            elif n.endswith("_logits"):  # allocation logits start at +-1e-3 (uniform skills): make routing matter
                p.copy_(torch.randn(p.shape, generator=g) * 2.0)


def inputs(arch: str, batch: int = 2, length: int = 7, seed: int = 0, pad_first: int = 2) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 300, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    mask[-1, :pad_first] = 0  # left padding on the last row
    out = {"input_ids": ids, "attention_mask": mask}
    if arch == "t5":
        out["decoder_input_ids"] = torch.randint(3, 300, (batch, 4), generator=g)
    return out


def routing(batch: int = 2) -> dict:
    return {"task_ids": torch.arange(batch) % 3, "domain_ids": torch.arange(batch) % 4}
