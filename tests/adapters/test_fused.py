"""Fused projections as separate LoRAs: `query_key_value:q,k,v` equals three separate linears with the same LoRAs."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from orchmoe.adapters import attach_adapters
from orchmoe.errors import ConfigError
from orchmoe.models.tiny import build_tiny

from .helpers import METHODS, routing

FUSED = {"gpt2": "c_attn", "glm": "query_key_value"}


class Split(nn.Module):
    """The fused linear written as separate nn.Linear children (one per output block), outputs concatenated."""

    def __init__(self, fused: nn.Module, names):
        super().__init__()
        weight = fused.weight.T if isinstance(fused, Conv1D) else fused.weight  # (d_out, d_in)
        self.names = list(names)
        for name, w, b in zip(names, weight.chunk(len(names)), fused.bias.chunk(len(names))):
            lin = nn.Linear(w.shape[1], w.shape[0])
            lin.weight.data.copy_(w)
            lin.bias.data.copy_(b)
            self.add_module(name, lin)

    def forward(self, x):
        return torch.cat([getattr(self, n)(x) for n in self.names], dim=-1)


def split_model(arch, names):
    model = build_tiny(arch)
    for path, module in list(model.named_modules()):
        if path.endswith("." + FUSED[arch]):
            parent, _, child = path.rpartition(".")
            setattr(model.get_submodule(parent), child, Split(module, names))
    return model


def method_cfg(method, targets):
    cfg = {"method": method, "target_modules": targets, "rank": 2}
    if method in ("poly", "mhr", "orchmoe"):
        cfg["n_tasks"] = 3
    if method == "mhr":
        cfg["n_splits"] = 2
    return cfg


@pytest.mark.parametrize("arch", ["gpt2", "glm"])
@pytest.mark.parametrize("method", METHODS)
def test_fused_slices_equal_three_separate_linears(arch, method):
    names = ["q", "k", "v"]
    fused = attach_adapters(build_tiny(arch), method_cfg(method, [f"{FUSED[arch]}:q,k,v"]))
    separate = attach_adapters(split_model(arch, names), method_cfg(method, names))
    trainable = {n: p for n, p in fused.named_parameters() if p.requires_grad}
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in trainable.values():  # B starts at 0: random weights everywhere make every LoRA and router matter
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    # Same parameter names (the slices are children named q, k, v in both), so the LoRAs copy one to one.
    assert set(trainable) == {n for n, p in separate.named_parameters() if p.requires_grad}
    separate.load_state_dict(fused.state_dict(), strict=False)
    ids = torch.randint(3, 300, (2, 6), generator=g)
    mask = torch.ones_like(ids)
    fused.eval(), separate.eval()
    a = fused(input_ids=ids, attention_mask=mask, **routing()).logits
    b = separate(input_ids=ids, attention_mask=mask, **routing()).logits
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    plain = build_tiny(arch)(input_ids=ids, attention_mask=mask).logits
    assert not torch.allclose(a, plain, atol=1e-3)  # the LoRAs change the output: the comparison has teeth


def test_fused_slices_are_separate_adapters_of_the_slice_size():
    model = attach_adapters(build_tiny("glm", d_model=32), {"method": "lora", "rank": 2,
                                                             "target_modules": ["query_key_value:q,k,v"]})
    n_layers = 2
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == n_layers * 3 * 2 * (32 + 32)
    assert sorted(model.adapted)[:3] == [f"base_model.glm.transformer.layers.0.attention.query_key_value.{s}"
                                         .removeprefix("base_model.") for s in "kqv"]


@pytest.mark.parametrize("target", ["query_key_value:", "query_key_value:q", "query_key_value:q,q",
                                    "query_key_value:q,bias", ":q,k"])
def test_bad_fused_syntax_names_the_entry(target):
    with pytest.raises(ConfigError, match="target_modules"):
        attach_adapters(build_tiny("glm"), {"method": "lora", "target_modules": [target]})


def test_fused_slices_must_divide_the_output():
    with pytest.raises(ConfigError, match="equal slices"):
        attach_adapters(build_tiny("glm"), {"method": "lora", "target_modules": ["query_key_value:a,b,c,d,e"]})


def test_fused_slices_export_as_one_peft_lora_on_the_fused_linear(tmp_path):
    """Exact (A stacked, B block-diagonal): outputs checked against PEFT in tests/adapters/test_peft_export.py."""
    model = attach_adapters(build_tiny("glm"), {"method": "lora", "rank": 2, "target_modules": ["query_key_value:q,k,v"]})
    model.export_peft(tmp_path / "peft")
    config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert config["target_modules"] == ["query_key_value"] and config["r"] == 3 * 2
