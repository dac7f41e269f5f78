"""LoRA scaling (`alpha`, PEFT's lora_alpha: scaling = alpha / rank) for every method: linear in the update, kept
by save / load, and carried into PEFT folders."""
from __future__ import annotations

import json

import pytest
import torch

from orchmoe.adapters import AdapterConfig, load_adapters
from orchmoe.errors import ConfigError
from orchmoe.models.tiny import build_tiny

from .helpers import METHODS, adapted, inputs, method_config, randomise_B, routing

PROBE = "model.layers.0.self_attn.q_proj"


def _update(model, x) -> torch.Tensor:
    """delta_h of one adapted linear in a forward pass: its output minus its frozen base's output on the same input."""
    layer = model.base_model.get_submodule(PROBE)
    seen = {}
    handle = layer.register_forward_hook(lambda m, args, out: seen.update(x=args[0], out=out))
    with torch.no_grad():
        model(**x, **routing())
    handle.remove()
    return seen["out"] - layer.base(seen["x"])


@pytest.mark.parametrize("method", METHODS)
def test_alpha_scales_every_methods_update_linearly_and_survives_save_load(tmp_path, method):
    x = inputs("llama")
    updates = {}
    for alpha in (1.5, 3.0):
        model = adapted("llama", method, alpha=alpha).eval()  # same seed: same A, B and routers
        randomise_B(model)
        assert model.cfg.scaling == alpha / 4
        updates[alpha] = _update(model, x)
    assert updates[1.5].abs().max() > 1e-3
    torch.testing.assert_close(updates[3.0], 2 * updates[1.5], rtol=1e-4, atol=1e-6)
    model.save_adapters(tmp_path / "ckpt")
    assert json.loads((tmp_path / "ckpt" / "orchmoe_adapter.json").read_text())["orchmoe_adapter"]["alpha"] == 3.0
    loaded = load_adapters(build_tiny("llama"), tmp_path / "ckpt").eval()
    assert loaded.cfg.scaling == 3.0 / 4
    assert torch.equal(loaded(**x, **routing()).logits, model(**x, **routing()).logits)


def test_default_scaling_is_one_except_poly_and_mhr():
    """No alpha: alpha = rank (PEFT's LoRA default, scaling 1); Poly / MHR scale by 1/r as PEFT's Poly and mttl."""
    for method in METHODS:
        cfg = AdapterConfig.from_dict(method_config(method, "llama"))
        assert cfg.scaling == (1 / 4 if method in ("poly", "mhr") else 1.0), method


@pytest.mark.parametrize("alpha", [0, -1.0])
def test_alpha_must_be_positive(alpha):
    with pytest.raises(ConfigError, match="alpha"):
        AdapterConfig.from_dict(method_config("lora", "llama", alpha=alpha))


def test_alpha_reaches_peft_lora_alpha_after_save_and_load(tmp_path):
    peft = pytest.importorskip("peft")
    model = adapted("llama", "lora", alpha=3.0).eval()  # rank 4: scaling 0.75, not PEFT's default
    randomise_B(model)
    model.save_adapters(tmp_path / "ckpt")
    load_adapters(build_tiny("llama"), tmp_path / "ckpt").export_peft(tmp_path / "peft")
    config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"]) == (4, 3.0)
    theirs = peft.PeftModel.from_pretrained(build_tiny("llama"), str(tmp_path / "peft")).eval()
    x = inputs("llama")
    with torch.no_grad():
        torch.testing.assert_close(theirs(**x).logits, model(**x).logits, rtol=1e-4, atol=1e-5)
