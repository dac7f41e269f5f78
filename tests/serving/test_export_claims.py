"""Exports lose nothing and are what they say: --out never destroys what export did not write, every folder's
sidecar states a measured check against the routed run, `route` refuses exports of another run or base."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from orchmoe.cli import main
from orchmoe.io import read_jsonl
from orchmoe.models.loading import load_base
from orchmoe.serving.runs import open_run

from ..suites import sampled_builtin_suite
from .test_export_route import _logits, _peft_logits, _train

peft = pytest.importorskip("peft")


@pytest.fixture(scope="module")
def suite2(tmp_path_factory):
    """Two domains (reverse: 4 tasks, sort: 2), so MoA block routers can disagree."""
    return sampled_builtin_suite(tmp_path_factory.mktemp("suite2"), n_instances=8, max_tasks=6, n_train=4)


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err  # one line, no traceback
    return err


def test_out_never_destroys_what_export_did_not_write(tmp_path, suite2, capsys):
    run_dir = _train(tmp_path, suite2, "llama", "lora")
    capsys.readouterr()
    before = sorted(p.name for p in run_dir.iterdir())
    for out in (run_dir, run_dir / "peft", tmp_path):  # the run itself, inside it, above it
        assert main(["export", str(run_dir), "--out", str(out), "--replace"]) == 2
        assert "the run folder" in _err(capsys)
    assert sorted(p.name for p in run_dir.iterdir()) == before

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main(["export", str(run_dir), "--out", str(mine)]) == 2
    assert "exists: pass --replace" in _err(capsys)
    assert main(["export", str(run_dir), "--out", str(mine), "--replace"]) == 2
    assert "not an earlier export" in _err(capsys) and (mine / "notes.txt").read_text() == "keep me"

    file = tmp_path / "a-file"
    file.write_text("mine")
    assert main(["export", str(run_dir), "--out", str(file), "--replace"]) == 2
    assert "it is not a folder" in _err(capsys) and file.read_text() == "mine"
    (tmp_path / "empty").mkdir()  # an empty folder holds nothing to lose
    assert main(["export", str(run_dir), "--out", str(tmp_path / "empty"), "--check-prompts", "0"]) == 0

    one = tmp_path / "one"
    assert main(["export", str(run_dir), "--out", str(one)]) == 0
    assert main(["export", str(run_dir), "--out", str(one)]) == 2
    capsys.readouterr()
    assert main(["export", str(run_dir), "--out", str(one), "--replace"]) == 0  # an earlier, unchanged export
    (one / "README.md").write_text("mine")
    assert main(["export", str(run_dir), "--out", str(one), "--replace"]) == 2
    assert "README.md was not written by orchmoe export" in _err(capsys)


def test_task_into_an_all_tasks_folder_keeps_its_folders(tmp_path, suite2, capsys):
    run_dir = _train(tmp_path, suite2, "llama", "mhr", n_splits=2)
    tasks = json.loads((suite2 / "manifest.json").read_text())["tasks"]
    out = tmp_path / "all"
    assert main(["export", str(run_dir), "--out", str(out), "--all-tasks", "--check-prompts", "0"]) == 0
    capsys.readouterr()  # the training's and the export's lines
    for replace in ([], ["--replace"]):
        assert main(["export", str(run_dir), "--out", str(out), "--task", tasks[0], *replace]) == 2
        _err(capsys)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(tasks)


def test_fixed_allocation_poly_exports_its_real_allocation(tmp_path, suite2, capsys):
    """The per-task reference (`per_task: true`): its module_logits stay at their random init and are never used;
    the PEFT Poly folder must carry the fixed allocation (before: max |delta logit| of the adapter's whole size)."""
    out = tmp_path / "ref-run"
    spec = json.dumps({"source": "tiny", "arch": "llama"})
    cfg = json.dumps({"method": "poly", "target_modules": ["q_proj", "v_proj"], "rank": 2})
    train = json.dumps({"lr": 5e-2, "batch_size": 4, "max_steps": 4, "max_source_length": 96,
                        "max_target_length": 12})
    assert main(["train", "--base", spec, "--data", str(suite2), "--adapter-config", cfg, "--train-config", train,
                 "--seed", "0", "--out", str(out), "--work", str(tmp_path / "work"), "--per-task"]) == 0
    assert main(["export", str(out), "--out", str(tmp_path / "poly")]) == 0
    run = open_run(out)
    records = read_jsonl(suite2 / "eval.jsonl")
    batch = run.collate(records)
    ids = batch["task_ids"]
    poly = peft.PeftModel.from_pretrained(load_base(json.loads(spec))[0], str(tmp_path / "poly")).eval()
    routed = _logits(run.model, batch, task_ids=ids, prompt_mask=batch["prompt_mask"])
    torch.testing.assert_close(_logits(poly, batch, task_ids=ids), routed, rtol=1e-4, atol=1e-5)
    check = json.loads((tmp_path / "poly" / "orchmoe_export.json").read_text())["check"]
    assert check["measured"] and check["max_abs_delta_logit"] < 1e-4 < check["max_abs_adapter_effect"]


def test_sidecars_state_the_measured_error_of_approximate_exports(tmp_path, suite2, capsys):
    run_dir = _train(tmp_path, suite2, "llama", "orchmoe")
    file = run_dir / "orchmoe_adapter.safetensors"  # 4 steps leave routing uniform: make it depend on the prompt
    scale = {"skill_logits": 500, "task_router": 50}
    save_file({k: v * next((f for n, f in scale.items() if n in k), 1) for k, v in load_file(file).items()}, file)
    tasks = json.loads((suite2 / "manifest.json").read_text())["tasks"]
    assert main(["export", str(run_dir), "--out", str(tmp_path / "t"), "--task", tasks[4]]) == 0
    meta = json.loads((tmp_path / "t" / "orchmoe_export.json").read_text())
    check = meta["check"]
    assert meta["approximate"] and check["measured"] and check["prompts"]["n"] == 2
    assert check["same_routing"]["n"] == 0  # no prompt is routed exactly as the task's mean
    # the stated error is the one PEFT shows on those prompts (first position scored, so a lower bound of it)
    run = open_run(run_dir)
    batch = run.collate([r for r in read_jsonl(suite2 / "eval.jsonl") if r["task"] == tasks[4]])
    routed = _logits(run.model, batch, prompt_mask=batch["prompt_mask"])
    mask = batch["attention_mask"].bool()
    seen = float((_peft_logits(run, tmp_path / "t", batch) - routed).abs().amax(-1)[mask].max())
    assert 1e-6 < seen <= check["max_abs_delta_logit"] + 1e-6

    prompt = read_jsonl(suite2 / "eval.jsonl")[0]["prompt"]  # exact for its prompt: measured as such
    assert main(["export", str(run_dir), "--out", str(tmp_path / "p"), "--prompt", prompt]) == 0
    meta = json.loads((tmp_path / "p" / "orchmoe_export.json").read_text())
    assert not meta["approximate"] and meta["check"]["same_routing"] == {"n": 1, "max_abs_delta_logit":
                                                                         meta["check"]["max_abs_delta_logit"]}
    assert meta["check"]["max_abs_delta_logit"] < 1e-4


def test_route_checks_run_and_base_and_says_when_no_export_is_exact(tmp_path, suite2, capsys, monkeypatch):
    from orchmoe.adapters.methods.moa import MoARouter

    run_a = _train(tmp_path / "a", suite2, "t5", "moa")
    other = tmp_path / "b" / "moa-run"  # the same method and suite on another base (tiny T5, seed 1)
    spec = json.dumps({"source": "tiny", "arch": "t5", "seed": 1})
    cfg = json.dumps({"method": "moa", "target_modules": ["q", "k", "v"], "rank": 2})
    assert main(["train", "--base", spec, "--data", str(suite2), "--adapter-config", cfg, "--train-config",
                 json.dumps({"batch_size": 4, "max_steps": 2}), "--out", str(other), "--work",
                 str(tmp_path / "b" / "work")]) == 0
    assert main(["export", str(other), "--out", str(tmp_path / "b-exports"), "--all-tasks"]) == 0
    assert main(["export", str(run_a), "--out", str(tmp_path / "a-exports"), "--all-tasks"]) == 0
    capsys.readouterr()
    prompt = read_jsonl(suite2 / "eval.jsonl")[0]["prompt"]
    assert main(["route", "--run", str(run_a), "--prompt", prompt, "--exports", str(tmp_path / "b-exports")]) == 2
    assert "exported on base" in _err(capsys)
    assert main(["route", "--run", str(run_a), "--prompt", prompt, "--exports", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in _err(capsys)
    assert main(["route", "--run", str(run_a), "--prompt", prompt, "--base",
                 json.dumps({"source": "tiny", "arch": "llama"})]) == 2
    assert "do not fit base" in _err(capsys)

    changed = tmp_path / "changed-run"  # the same run with other weights: not what was exported
    shutil.copytree(run_a, changed)
    weights = load_file(changed / "orchmoe_adapter.safetensors")
    save_file({k: v * 2 for k, v in weights.items()}, changed / "orchmoe_adapter.safetensors")
    assert main(["route", "--run", str(changed), "--prompt", prompt, "--exports", str(tmp_path / "a-exports")]) == 2
    assert "exported from run" in _err(capsys)

    first = sorted(open_run(run_a).model.block_routers)[0]
    route_features = MoARouter.route_features

    def forced(pick):  # every block router picks domain pick(its name), for every prompt
        def route(self, features):
            route_features(self, features)
            d = torch.full((features.shape[0],), pick(self.name))
            self.ctx.readout[self.name]["predicted_domain"] = d
            return torch.nn.functional.one_hot(d, 2).float()
        return route

    def routed(pick):
        monkeypatch.setattr(MoARouter, "route_features", forced(pick))
        assert main(["route", "--run", str(run_a), "--jsonl", str(suite2 / "eval.jsonl"), "--exports",
                     str(tmp_path / "a-exports")]) == 0
        out = capsys.readouterr()
        return [json.loads(line) for line in out.out.splitlines()], out.err

    agreed, err = routed(lambda name: 1)
    assert all(r["exact"] and r["distance"] == 0 and r["adapter"] == "sort" for r in agreed) and not err
    # one block router (of four) picks the other domain: the majority's domain LoRA is no longer exact
    split, err = routed(lambda name: 0 if name == first else 1)
    assert all(r["adapter"] == "sort" and not r["exact"] and r["blocks"] == {"reverse": 1, "sort": 3}
               and "--prompt" in r["instead"] for r in split)
    assert f"no exported adapter is exact for {len(split)} of {len(split)} prompts" in err
