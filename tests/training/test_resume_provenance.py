"""Resume after a kill -> identical weights and metrics; checkpoint fingerprints; provenance; NaN/inf handling."""
from __future__ import annotations

import json

import pytest
import torch

from orchmoe.cli import main
from orchmoe.errors import ConfigError, TrainingError
from orchmoe.models.tiny import build_tiny, byte_tokenizer
from orchmoe.training.cli import resolve_adapter_config
from orchmoe.training.evaluate import evaluate, metrics_from_predictions
from orchmoe.training.trainer import TrainConfig, train

from .conftest import FAST, TARGETS
from .conftest import tiny_spec as _tiny_spec


def test_resume_after_a_kill_ends_with_identical_weights(tmp_path, suite):
    def run(stop_after, work):
        cfg = resolve_adapter_config({"method": "orchmoe", "target_modules": TARGETS["t5"], "rank": 2},
                                     json.loads((suite / "manifest.json").read_text()))
        return train(build_tiny("t5"), byte_tokenizer(), suite, cfg, TrainConfig.from_dict(FAST), 3, work,
                     stop_after=stop_after)

    full = run(None, tmp_path / "w1")
    assert run(3, tmp_path / "w2") is None  # "killed" after 3 steps, a checkpoint at step 3 exists
    resumed = run(None, tmp_path / "w2")
    a, b = full.adapter_state_dict(), resumed.adapter_state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["loss"] for r in full.train_log] == [r["loss"] for r in resumed.train_log]
    # ... and the same evaluation metrics
    ckpts = []
    for i, m in enumerate((full, resumed)):
        m.save_adapters(tmp_path / f"c{i}")
        ckpts.append(evaluate(build_tiny("t5"), byte_tokenizer(), suite, "eval", tmp_path / f"c{i}",
                              max_source_length=96, max_target_length=12)[1])
    assert ckpts[0] == ckpts[1]


def test_a_checkpoint_of_another_run_is_never_resumed(tmp_path, suite):
    manifest = json.loads((suite / "manifest.json").read_text())
    cfg = resolve_adapter_config({"method": "lora", "target_modules": TARGETS["t5"], "rank": 2}, manifest)
    assert train(build_tiny("t5"), byte_tokenizer(), suite, cfg, TrainConfig.from_dict(FAST), 0, tmp_path / "w",
                 stop_after=2) is None
    changed = train(build_tiny("t5"), byte_tokenizer(), suite, cfg, TrainConfig.from_dict(FAST), 1, tmp_path / "w")
    fresh = train(build_tiny("t5"), byte_tokenizer(), suite, cfg, TrainConfig.from_dict(FAST), 1, tmp_path / "w2")
    a, b = changed.adapter_state_dict(), fresh.adapter_state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # seed 1 started from step 0, not from seed 0's step 2


def test_provenance_records_config_versions_and_md5s(tmp_path, suite, monkeypatch):
    from orchmoe.io import md5_file, md5_path

    monkeypatch.setenv("SLURM_JOB_ID", "4242")  # as inside a SLURM job
    out, ev = tmp_path / "ckpt", tmp_path / "eval"
    adapter = json.dumps({"method": "orchmoe", "target_modules": TARGETS["llama"], "rank": 2})
    assert main(["train", "--base", _tiny_spec("llama"), "--data", str(suite), "--adapter-config", adapter,
                 "--train-config", json.dumps(FAST), "--seed", "5", "--out", str(out), "--work", str(tmp_path / "w")]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == 5 and run["config"]["train"]["lr"] == FAST["lr"]
    assert run["config"]["train"]["warmup_ratio"] == 0.06  # defaults are resolved into the record
    assert run["config"]["adapter"]["n_tasks"] == 4  # filled from the suite manifest
    assert run["inputs"]["data"]["md5"] == md5_path(suite)
    for name in ("orchmoe_adapter.safetensors", "orchmoe_adapter.json", "train_log.csv"):
        assert run["outputs"][name]["md5"] == md5_file(out / name)
    assert run["versions"]["torch"] == torch.__version__ and run["device"]["device"] == "cpu"
    assert "commit" in run["git"]
    assert run["slurm_job_id"] == "4242"
    assert main(["evaluate", "--base", _tiny_spec("llama"), "--checkpoint", str(out), "--data", str(suite),
                 "--out", str(ev), "--max-source-length", "96", "--max-target-length", "12"]) == 0
    erun = json.loads((ev / "run.json").read_text())
    assert erun["inputs"]["checkpoint"]["md5"] == md5_path(out)
    assert erun["outputs"]["metrics.json"]["md5"] == md5_file(ev / "metrics.json")
    assert erun["config"]["split"] == "eval"
    monkeypatch.delenv("SLURM_JOB_ID")
    assert main(["evaluate", "--base", _tiny_spec("llama"), "--checkpoint", "none", "--data", str(suite),
                 "--out", str(tmp_path / "ev0"), "--max-source-length", "96", "--max-target-length", "12"]) == 0
    assert json.loads((tmp_path / "ev0" / "run.json").read_text())["slurm_job_id"] is None
    rows = [json.loads(line) for line in (ev / "predictions.jsonl").read_text().splitlines()]
    assert metrics_from_predictions(rows) == json.loads((ev / "metrics.json").read_text())


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_loss_stops_and_writes_nothing(tmp_path, suite, monkeypatch, value):
    def poisoned(spec):
        base = build_tiny("t5")
        with torch.no_grad():
            base.lm_head.weight.fill_(value)
        return base, byte_tokenizer()

    monkeypatch.setattr("orchmoe.models.loading.load_base", poisoned)
    code = main(["train", "--base", _tiny_spec("t5"), "--data", str(suite), "--adapter-config",
                 json.dumps({"method": "lora", "target_modules": TARGETS["t5"], "rank": 2}),
                 "--train-config", json.dumps(FAST), "--out", str(tmp_path / "o"), "--work", str(tmp_path / "w")])
    assert code == 2 and not (tmp_path / "o").exists()
    assert not list(tmp_path.glob(".o.*"))  # no temporary output left behind either
    cfg = resolve_adapter_config({"method": "lora", "target_modules": TARGETS["t5"], "rank": 2},
                                 json.loads((suite / "manifest.json").read_text()))
    with pytest.raises(TrainingError, match="non-finite loss .* at step 1"):
        train(poisoned(None)[0], byte_tokenizer(), suite, cfg, TrainConfig.from_dict(FAST), 0, tmp_path / "w2")
