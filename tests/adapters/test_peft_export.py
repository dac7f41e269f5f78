"""Every method leaves as PEFT folders with the routed model's outputs; PEFT LoRA folders come in as skills."""
from __future__ import annotations

import json

import pytest
import torch

from orchmoe.adapters import export as ex
from orchmoe.errors import ConfigError
from orchmoe.models.tiny import build_tiny

from .helpers import adapted, inputs, randomise_B

peft = pytest.importorskip("peft")
ARCHS = ["t5", "llama", "gpt2"]


def _peft(arch, folder):
    import warnings

    with warnings.catch_warnings():  # a key PEFT does not know would warn "upgrade PEFT": none may be written
        warnings.filterwarnings("error", message="Unexpected keyword arguments")
        return peft.PeftModel.from_pretrained(build_tiny(arch), str(folder)).eval()


def _close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def _trained(arch, method, **kw):
    model = adapted(arch, method, **kw).eval()
    randomise_B(model)
    return model


@pytest.mark.parametrize("arch", ["t5", "llama"])
@pytest.mark.parametrize("method", ["poly", "mhr"])
def test_poly_and_mhr_load_as_peft_poly(tmp_path, arch, method):
    model = _trained(arch, method, alpha=2.0)  # alpha != 1: PEFT's fixed 1/r scaling takes it folded into B
    ex.write_peft_poly(tmp_path / "p", model)
    assert json.loads((tmp_path / "p" / "adapter_config.json").read_text())["peft_type"] == "POLY"
    loaded = _peft(arch, tmp_path / "p")
    x, tasks = inputs(arch), torch.tensor([2, 0])
    _close(loaded(**x, task_ids=tasks).logits, model(**x, task_ids=tasks).logits)


def test_peft_poly_refuses_gpt2_conv1d(tmp_path):
    with pytest.raises(ConfigError, match="Conv1D"):
        ex.write_peft_poly(tmp_path / "p", _trained("gpt2", "poly"))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method", ["poly", "mhr"])
def test_one_task_of_poly_and_mhr_is_a_plain_lora(tmp_path, arch, method):
    model = _trained(arch, method)
    for t in (0, 2):
        ex.write_peft_lora(tmp_path / f"t{t}", model, ex.task_layers(model, t), model.cfg.scaling)
        x = inputs(arch)
        _close(_peft(arch, tmp_path / f"t{t}")(**x).logits, model(**x, task_ids=torch.tensor([t, t])).logits)
    config = json.loads((tmp_path / "t0" / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["peft_type"] == "LORA"


@pytest.mark.parametrize("arch", ARCHS)
def test_orchmoe_prompt_routing_is_one_lora_of_rank_S_times_r(tmp_path, arch):
    model = _trained(arch, "orchmoe")
    x = inputs(arch, batch=1, pad_first=0)
    batch = {"input_ids": x["input_ids"], "attention_mask": x["attention_mask"], "prompt_mask": x["attention_mask"],
             "task_ids": torch.tensor([-1]), "domain_ids": torch.tensor([-1])}
    weights, _ = ex.prompt_routing(model, batch)
    assert len({tuple(w[0].tolist()) for w in weights.values()}) > 1  # blocks route differently
    ex.write_peft_lora(tmp_path / "p", model, ex.mixed_layers(model, {g: w[0] for g, w in weights.items()}),
                       model.cfg.scaling)
    assert json.loads((tmp_path / "p" / "adapter_config.json").read_text())["r"] == 4 * 4
    _close(_peft(arch, tmp_path / "p")(**x).logits, model(**x).logits)


def test_layers_of_different_rank_use_peft_rank_pattern(tmp_path, monkeypatch):
    """Block 0 mixes two skills, block 1 all four: ranks 2r and 4r in one PEFT folder (rank_pattern, alpha_pattern)."""
    model = _trained("llama", "orchmoe", alpha=8.0)
    fixed = {"model__layers__0": torch.tensor([[0.5, 0.5, 0.0, 0.0]]), "model__layers__1": torch.full((1, 4), 0.25)}
    for key, router in model.block_routers.items():  # the routing the model itself then runs with
        monkeypatch.setattr(router, "route_features", lambda features, w=fixed[key]: w.expand(features.shape[0], -1))
    ex.write_peft_lora(tmp_path / "p", model, ex.mixed_layers(model, {k: v[0] for k, v in fixed.items()}),
                       model.cfg.scaling)
    config = json.loads((tmp_path / "p" / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"]) == (8, 16.0)  # 3 layers each: the first layer's rank
    assert config["rank_pattern"] == {f"model.layers.1.self_attn.{m}": 16 for m in ("k_proj", "q_proj", "v_proj")}
    assert set(config["alpha_pattern"].values()) == {32.0}
    x = inputs("llama")
    _close(_peft("llama", tmp_path / "p")(**x).logits, model(**x).logits)


@pytest.mark.parametrize("arch", ARCHS)
def test_moa_domain_is_its_rank_r_lora(tmp_path, arch):
    model = _trained(arch, "moa")
    with torch.no_grad():  # a zero router ties every domain: top-1 picks domain 0 in every block
        for r in model.block_routers.values():
            r.router.weight.zero_()
    one_hot = {g: torch.tensor([1.0, 0, 0, 0]) for g in model.block_routers}
    ex.write_peft_lora(tmp_path / "d0", model, ex.mixed_layers(model, one_hot), model.cfg.scaling)
    assert json.loads((tmp_path / "d0" / "adapter_config.json").read_text())["r"] == 4
    x = inputs(arch)
    _close(_peft(arch, tmp_path / "d0")(**x).logits, model(**x).logits)


def test_regex_targets_export_the_same_modules(tmp_path):
    """A regex picks q in the decoder only: PEFT must adapt exactly those, not every 'q'."""
    model = _trained("t5", "lora", target_modules=r"decoder\.block\.\d+\.layer\.0\.SelfAttention\.q")
    model.export_peft(tmp_path / "p")
    config = json.loads((tmp_path / "p" / "adapter_config.json").read_text())
    assert config["target_modules"] == sorted(model.adapted)
    loaded = _peft("t5", tmp_path / "p")
    lora_modules = {n.removeprefix("base_model.model.") for n, m in loaded.named_modules()
                    if hasattr(m, "lora_A") and not n.endswith(("lora_A", "lora_B"))}
    assert lora_modules == set(model.adapted)
    x = inputs("t5")
    _close(loaded(**x).logits, model(**x).logits)
    plain = _trained("llama", "lora")
    assert ex.peft_target_modules(plain, plain.adapted) == ["k_proj", "q_proj", "v_proj"]  # leaf names when they are exact


def test_peft_lora_folders_initialise_moa_skills(tmp_path):
    folders = []
    for i in range(4):
        cfg = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj"], init_lora_weights=False)
        torch.manual_seed(i)
        peft.get_peft_model(build_tiny("llama"), cfg).save_pretrained(tmp_path / f"hub{i}")
        folders.append(tmp_path / f"hub{i}")
    moa = adapted("llama", "moa").eval()
    moa.init_skills_from(folders)
    with torch.no_grad():
        for r in moa.block_routers.values():
            r.router.weight.zero_()  # -> domain 0 everywhere
    x = inputs("llama")
    _close(moa(**x).logits, _peft("llama", folders[0])(**x).logits)
    with pytest.raises(ConfigError, match=rf"{tmp_path}/hub0: .*rank 2"):
        adapted("llama", "moa", rank=2).init_skills_from(folders)
    with pytest.raises(ConfigError, match=rf"{tmp_path}/hub0: its LoRA modules differ"):
        adapted("llama", "moa", target_modules=["q_proj", "o_proj"]).init_skills_from(folders)


@pytest.mark.parametrize("method", ["lora", "orchmoe"])
def test_fused_slices_export_as_one_lora_on_the_fused_linear(tmp_path, method):
    """GPT-2's c_attn as q, k, v slices: one PEFT LoRA of rank 3r on c_attn (B block-diagonal), c_proj at rank r."""
    model = _trained("gpt2", method, target_modules=["c_attn:q,k,v", "c_proj"])
    if method == "lora":
        layers = ex.skill_layers(model, 0)
    else:
        x = inputs("gpt2", batch=1, pad_first=0)
        batch = {**x, "prompt_mask": x["attention_mask"], "task_ids": torch.tensor([-1]),
                 "domain_ids": torch.tensor([-1])}
        layers = ex.mixed_layers(model, {g: w[0] for g, w in ex.prompt_routing(model, batch)[0].items()})
    ex.write_peft_lora(tmp_path / "p", model, layers, model.cfg.scaling)
    config = json.loads((tmp_path / "p" / "adapter_config.json").read_text())
    S = model.cfg.n_skills
    assert config["target_modules"] == ["c_attn", "c_proj"] and config["fan_in_fan_out"]
    ranks = {config["r"], *config.get("rank_pattern", {}).values()}
    assert ranks == {4 * S, 3 * 4 * S}
    x = inputs("gpt2", batch=1, pad_first=0)
    _close(_peft("gpt2", tmp_path / "p")(**x).logits, model(**x).logits)


def test_a_peft_lora_on_a_fused_linear_initialises_its_slices(tmp_path):
    cfg = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], init_lora_weights=False, fan_in_fan_out=True)
    torch.manual_seed(0)
    peft.get_peft_model(build_tiny("gpt2"), cfg).save_pretrained(tmp_path / "hub")
    moa = adapted("gpt2", "moa", target_modules=["c_attn:q,k,v"]).eval()
    moa.init_skills_from([tmp_path / "hub"] * 4)
    with torch.no_grad():
        for r in moa.block_routers.values():
            r.router.weight.zero_()
    x = inputs("gpt2")
    _close(moa(**x).logits, _peft("gpt2", tmp_path / "hub")(**x).logits)


def test_writing_a_peft_folder_never_replaces_other_files(tmp_path):
    """The library writer replaces an earlier PEFT export, never a folder holding anything else (a training run)."""
    model = _trained("llama", "lora")
    model.export_peft(tmp_path / "p")
    model.export_peft(tmp_path / "p")  # its own three files: replaced
    run = tmp_path / "run"
    run.mkdir()
    (run / "orchmoe_adapter.safetensors").write_bytes(b"weights")
    with pytest.raises(ConfigError, match="holds orchmoe_adapter.safetensors, which a PEFT export does not write"):
        model.export_peft(run)
    assert (run / "orchmoe_adapter.safetensors").read_bytes() == b"weights"
