"""PEFT export, skill initialisation from single LoRAs, routing readout, parameter formulas."""
from __future__ import annotations

import pytest
import torch

from orchmoe.adapters import count_parameters, load_adapters
from orchmoe.models.architectures import load_architecture
from orchmoe.models.tiny import build_tiny, tiny_config

from .helpers import METHODS, adapted, inputs, randomise_B, routing

peft = pytest.importorskip("peft")


@pytest.mark.parametrize("arch", ["t5", "llama", "gpt2"])
def test_lora_export_loads_in_peft_with_identical_outputs(tmp_path, arch):
    model = adapted(arch, "lora", alpha=8.0).eval()
    randomise_B(model)
    model.export_peft(tmp_path / "peft")
    peft_model = peft.PeftModel.from_pretrained(build_tiny(arch), str(tmp_path / "peft")).eval()
    x = inputs(arch)
    torch.testing.assert_close(peft_model(**x).logits, model(**x).logits, rtol=1e-4, atol=1e-4)


def test_one_skill_of_a_bank_exports_as_a_lora(tmp_path):
    model = adapted("llama", "moe_lora").eval()
    randomise_B(model)
    model.export_peft(tmp_path / "skill1", skill=1)
    peft_model = peft.PeftModel.from_pretrained(build_tiny("llama"), str(tmp_path / "skill1")).eval()
    with torch.no_grad():  # a zero gate gives every expert 1/S: keep only expert 1, scaled by S
        for layer in model.adapted.values():
            layer.router.gate.weight.zero_()
            keep = layer.bank.lora_B[1] * layer.bank.n_skills
            layer.bank.lora_B.zero_()
            layer.bank.lora_B[1] = keep
    x = inputs("llama")
    torch.testing.assert_close(peft_model(**x).logits, model(**x).logits, rtol=1e-4, atol=1e-4)


def test_moe_lora_starts_from_single_lora_checkpoints(tmp_path):
    dirs = []
    for i in range(2):
        single = adapted("t5", "lora", seed=i)
        randomise_B(single, seed=10 + i)
        dirs.append(single.save_adapters(tmp_path / f"single{i}"))
    moe = adapted("t5", "moe_lora", n_skills=2)
    moe.init_skills_from(dirs)
    single0 = load_adapters(build_tiny("t5"), dirs[0])
    name = next(iter(moe.adapted))
    assert torch.equal(moe.adapted[name].bank.lora_A[0], single0.adapted[name].bank.lora_A[0])
    assert torch.equal(moe.adapted[name].bank.lora_B[0], single0.adapted[name].bank.lora_B[0])


def test_routing_report_and_last_routing():
    model = adapted("t5", "orchmoe").eval()
    model(**inputs("t5"), **routing())
    report = model.routing_report()
    assert report["method"] == "orchmoe"
    assert len(report["allocation"]) == 4  # 2 encoder + 2 decoder blocks
    for alloc in report["allocation"].values():
        assert alloc.shape == (3, 4)
        assert abs(alloc.sum(1) - 1).max() < 1e-5
    last = model.last_routing()
    assert all(v["task_weights"].shape == (2, 3) for v in last.values())
    moa = adapted("llama", "moa").eval()
    moa(**inputs("llama"), **routing())
    assert all(v["predicted_domain"].shape == (2,) for v in moa.last_routing().values())


def _lin(d_in, d_out, r, S):
    return S * r * (d_in + d_out)


@pytest.mark.parametrize("method", METHODS)
def test_parameter_counts_equal_hand_formulas(method):
    d, L, T = 64, 2, 3  # tiny llama: q, k, v all 64 -> 64, 2 blocks
    cfg = {"method": method, "target_modules": ["q_proj", "k_proj", "v_proj"], "rank": 4, "n_tasks": T}
    S = 1 if method == "lora" else 4
    if method == "mhr":
        cfg["n_splits"] = 2
    n_lin = 3 * L
    expected = n_lin * _lin(d, d, 4, S)
    expected += {
        "lora": 0,
        "moe_lora": n_lin * d * S,
        "poly": n_lin * T * S,
        "mhr": n_lin * T * 2 * S,
        "orchmoe": L * (d * T + T + T * S),
        "moa": L * d * S,
    }[method]
    counted = count_parameters(tiny_config("llama"), cfg)
    assert counted["trainable"] == expected
    built = adapted("llama", method, **({"n_tasks": T} if method in ("poly", "mhr", "orchmoe") else {}))
    assert counted["trainable"] == sum(p.numel() for p in built.parameters() if p.requires_grad)


def test_paper_scale_counts_on_meta_device():
    t5 = load_architecture("t5-v1_1-xxl-lm-adapt")
    lora = count_parameters(t5, {"method": "lora", "rank": 32, "target_modules": ["q", "k", "v"]})
    assert lora["trainable"] == 216 * 32 * (4096 + 4096)  # 72 attention modules x q, k, v
    orch = count_parameters(t5, {"method": "orchmoe", "rank": 4, "n_tasks": 100, "target_modules": ["q", "k", "v"]})
    assert orch["trainable"] == 216 * 4 * 4 * 8192 + 48 * (4096 * 100 + 100 + 100 * 4)


def test_params_cli_prints_the_counts(capsys, tmp_path):
    import json

    from orchmoe.cli import main

    tiny_config("llama").save_pretrained(tmp_path / "tiny")
    method = {"method": "orchmoe", "rank": 4, "n_tasks": 3}
    assert main(["params", "--model-config", str(tmp_path / "tiny"), "--method", "lora",
                 "--method", json.dumps(method)]) == 0
    rows = {line.split()[2]: line.split()[2:] for line in capsys.readouterr().out.splitlines()[1:]}
    lora = count_parameters(tiny_config("llama"), {"method": "lora", "rank": 32,
                                                   "target_modules": ["q_proj", "k_proj", "v_proj"]})
    orch = count_parameters(tiny_config("llama"), {**method, "target_modules": ["q_proj", "k_proj", "v_proj"]})
    assert rows["lora"][1] == f"{lora['trainable']:,}" == f"{6 * 32 * 128:,}"
    assert rows["orchmoe"][1] == f"{orch['trainable']:,}"
    assert main(["params", "--architecture", "no-such-model", "--method", "lora"]) == 2
    assert "no-such-model" in capsys.readouterr().err


def test_params_default_targets_fit_every_shipped_architecture(capsys):
    # README: `orchmoe params --architecture glm-10b --method orchmoe` (GLM fuses q, k, v in query_key_value)
    from orchmoe.cli import main
    from orchmoe.models.architectures import names

    for name in names():
        assert main(["params", "--architecture", name, "--method", "lora"]) == 0, capsys.readouterr().err
        row = capsys.readouterr().out.splitlines()[1].split()
        assert row[1:3] == [name, "lora"] and int(row[3].replace(",", "")) > 0
