"""The serving recipe without a server: train -> `orchmoe export` -> `orchmoe route` -> load the chosen LoRA in PEFT."""
from __future__ import annotations

import json

import pytest
import torch

from orchmoe.cli import main
from orchmoe.io import md5_file, read_jsonl
from orchmoe.models.loading import load_base
from orchmoe.serving.runs import open_run

from ..suites import sampled_builtin_suite

peft = pytest.importorskip("peft")
TARGETS = {"t5": ["q", "k", "v"], "llama": ["q_proj", "k_proj", "v_proj"]}
TRAIN = json.dumps({"lr": 1e-2, "batch_size": 4, "max_steps": 4, "max_source_length": 96, "max_target_length": 12})


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    return sampled_builtin_suite(tmp_path_factory.mktemp("suite"), n_instances=12, max_tasks=4, n_train=8)


def _train(tmp_path, suite, arch, method, **adapter):
    out = tmp_path / f"{method}-run"
    spec = json.dumps({"source": "tiny", "arch": arch})
    cfg = {"method": method, "target_modules": TARGETS[arch], "rank": 2, **adapter}
    assert main(["train", "--base", spec, "--data", str(suite), "--adapter-config", json.dumps(cfg),
                 "--train-config", TRAIN, "--seed", "0", "--out", str(out), "--work", str(tmp_path / "work")]) == 0
    return out


def _logits(model, batch, **routing):
    """Logits on the batch's prompts (T5: three decoder steps), for a routed wrapper or a PEFT model alike."""
    x = {k: batch[k] for k in ("input_ids", "attention_mask")}
    if "T5" in type(model.get_base_model() if hasattr(model, "get_base_model") else model.base_model).__name__:
        x["decoder_input_ids"] = torch.zeros_like(batch["input_ids"][:, :3])
    with torch.no_grad():
        return model(**x, **routing).logits


def _peft_logits(run, folder, batch):
    base, _ = load_base(json.loads(run.record["config"]["base"]))
    return _logits(peft.PeftModel.from_pretrained(base, str(folder)).eval(), batch)


def test_orchmoe_recipe_export_all_route_load(tmp_path, suite, capsys):
    run_dir = _train(tmp_path, suite, "t5", "orchmoe")
    exports = tmp_path / "exports"
    assert main(["export", str(run_dir), "--out", str(exports), "--all-tasks"]) == 0
    tasks = json.loads((suite / "manifest.json").read_text())["tasks"]
    assert sorted(p.name for p in exports.iterdir() if p.is_dir()) == sorted(tasks)
    assert json.loads((exports / "orchmoe_exports.json").read_text())["folders"] == tasks
    meta = json.loads((exports / tasks[0] / "orchmoe_export.json").read_text())
    assert meta["merged_from"]["task"] == tasks[0]
    assert meta["merged_from"]["prompts"]["n"] == 8 and meta["run_files"]["orchmoe_adapter.safetensors"] == \
        md5_file(run_dir / "orchmoe_adapter.safetensors")
    assert meta["files"]["adapter_model.safetensors"] == md5_file(exports / tasks[0] / "adapter_model.safetensors")
    capsys.readouterr()

    prompt = read_jsonl(suite / "eval.jsonl")[0]["prompt"]
    assert main(["route", "--run", str(run_dir), "--prompt", prompt, "--exports", str(exports)]) == 0
    picked = json.loads(capsys.readouterr().out)
    assert picked["adapter"] in tasks and picked["path"] == str(exports / picked["adapter"])
    assert main(["route", "--run", str(run_dir), "--prompt", prompt]) == 0  # profiles computed, not read: same pick
    assert json.loads(capsys.readouterr().out)["adapter"] == picked["adapter"]
    run = open_run(run_dir)
    # the recorded spread: how far the task's single train prompts stray from their mean routing, recomputed here
    own = [r["prompt"] for r in read_jsonl(suite / "train.jsonl") if r["task"] == tasks[0]][:8]
    weights, _ = run.routing(own)
    spread = max(float((w - w.mean(0)).abs().max()) for w in weights.values())
    assert meta["merged_from"]["routing_spread"] == pytest.approx(spread, abs=1e-6) and spread > 1e-3
    batch = run.collate([{"prompt": prompt}])
    chosen = _peft_logits(run, picked["path"], batch)  # the chosen LoRA serves the prompt in plain PEFT
    assert chosen.shape[-1] == run.model.base_model.config.vocab_size and torch.isfinite(chosen).all()

    # exact for the prompt's own routing: export --prompt equals the routed model on that prompt
    assert main(["export", str(run_dir), "--out", str(tmp_path / "one"), "--prompt", prompt]) == 0
    routed = _logits(run.model, batch, prompt_mask=batch["prompt_mask"])
    torch.testing.assert_close(_peft_logits(run, tmp_path / "one", batch), routed, rtol=1e-4, atol=1e-5)
    capsys.readouterr()
    # batch mode: one line per prompt, ids kept
    assert main(["route", "--run", str(run_dir), "--jsonl", str(suite / "eval.jsonl"), "--exports", str(exports)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in lines] == [r["id"] for r in read_jsonl(suite / "eval.jsonl")]


def test_poly_exports_as_peft_poly_and_per_task_loras(tmp_path, suite, capsys):
    run_dir = _train(tmp_path, suite, "llama", "mhr", n_splits=2)
    run = open_run(run_dir)
    records = read_jsonl(suite / "eval.jsonl")
    task = records[0]["task"]
    batch = run.collate([r for r in records if r["task"] == task])
    ids = batch["task_ids"]
    routed = _logits(run.model, batch, task_ids=ids)
    assert main(["export", str(run_dir), "--out", str(tmp_path / "poly")]) == 0
    base, _ = load_base(json.loads(run.record["config"]["base"]))
    poly = peft.PeftModel.from_pretrained(base, str(tmp_path / "poly")).eval()
    torch.testing.assert_close(_logits(poly, batch, task_ids=ids), routed, rtol=1e-4, atol=1e-5)
    assert main(["export", str(run_dir), "--out", str(tmp_path / "task"), "--task", task]) == 0
    torch.testing.assert_close(_peft_logits(run, tmp_path / "task", batch), routed, rtol=1e-4, atol=1e-5)
    capsys.readouterr()
    assert main(["route", "--run", str(run_dir), "--prompt", "x"]) == 2
    assert "no prompt router" in capsys.readouterr().err


def test_moa_exports_one_rank_r_lora_per_domain(tmp_path, suite, capsys):
    run_dir = _train(tmp_path, suite, "t5", "moa")
    domains = json.loads((suite / "manifest.json").read_text())["domains"]
    assert main(["export", str(run_dir), "--out", str(tmp_path / "d"), "--all-tasks"]) == 0
    assert sorted(p.name for p in (tmp_path / "d").iterdir() if p.is_dir()) == sorted(domains)
    config = json.loads((tmp_path / "d" / domains[0] / "adapter_config.json").read_text())
    assert config["r"] == 2 and config["lora_alpha"] == 2.0
    capsys.readouterr()
    assert main(["route", "--run", str(run_dir), "--jsonl", str(suite / "eval.jsonl"), "--exports",
                 str(tmp_path / "d")]) == 0
    picks = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert all(p["adapter"] in domains and (tmp_path / "d" / p["adapter"]).is_dir() for p in picks)
    assert main(["export", str(run_dir), "--out", str(tmp_path / "x"), "--task", "anything"]) == 2
    assert "moa routes by domain" in capsys.readouterr().err


def test_moe_lora_exports_single_experts_only(tmp_path, suite, capsys):
    run_dir = _train(tmp_path, suite, "llama", "moe_lora", n_skills=2)
    assert main(["export", str(run_dir), "--out", str(tmp_path / "x")]) == 2
    assert "moe_lora routes every token" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert main(["export", str(run_dir), "--out", str(tmp_path / "e1"), "--skill", "1"]) == 0
    meta = json.loads((tmp_path / "e1" / "orchmoe_export.json").read_text())
    assert meta["merged_from"] == {"skill": 1} and meta["exact"] == "one expert, not the mixture"
    run = open_run(run_dir)
    batch = run.collate(read_jsonl(suite / "eval.jsonl")[:2])
    with torch.no_grad():  # keep only expert 1 under a zero gate (every expert 1/S): the expert alone, times S
        for layer in run.model.adapted.values():
            layer.router.gate.weight.zero_()
            layer.bank.lora_B[0].zero_()
            layer.bank.lora_B[1] *= 2
    torch.testing.assert_close(_peft_logits(run, tmp_path / "e1", batch), _logits(run.model, batch), rtol=1e-4,
                               atol=1e-5)
