"""Resume after a kill -> identical weights and metrics; resume state of another run (code, base, init, data,
config, seed) -> step 0 with the reason; no state left after a finished run; provenance; NaN/inf handling."""
from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch

from orchmoe import lineage
from orchmoe.adapters import attach_adapters
from orchmoe.cli import main
from orchmoe.errors import TrainingError
from orchmoe.models.loading import load_base
from orchmoe.models.tiny import build_tiny, byte_tokenizer
from orchmoe.training.cli import base_md5, base_spec, resolve_adapter_config
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


SHORT = {**FAST, "max_steps": 2}


def _cfg(suite, method="lora", **fields):
    return resolve_adapter_config({"method": method, "target_modules": TARGETS["t5"], "rank": 2, **fields},
                                  json.loads((suite / "manifest.json").read_text()))


def _run(suite, work, seed=0, base_seed=0, cfg=None, train_cfg=FAST, init=None, stop_after=None):
    return train(build_tiny("t5", seed=base_seed), byte_tokenizer(), suite, cfg or _cfg(suite),
                 TrainConfig.from_dict(train_cfg), seed, work, init, stop_after=stop_after)


def _lora(suite, folder, seed):
    torch.manual_seed(seed)  # LoRA A is drawn at random: each seed gives another init checkpoint
    return attach_adapters(build_tiny("t5"), _cfg(suite)).save_adapters(folder)


def _edited_src(tmp_path, file):
    """A copy of the orchmoe package with one comment appended to `file` (for lineage.SRC)."""
    src = tmp_path / "src"
    shutil.copytree(lineage.SRC / "orchmoe", src / "orchmoe", ignore=shutil.ignore_patterns("__pycache__"))
    with open(src / file, "a") as f:
        f.write("\n# edited\n")
    return src


def _log_lines(caplog, start):
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(start)]


# what the old fingerprint missed; a changed config or seed takes the same path (see the from-scratch test below)
@pytest.mark.parametrize("component", ["code", "base", "init", "data"])
def test_state_of_another_run_restarts_from_step_0_naming_what_differs(tmp_path, suite, monkeypatch, caplog,
                                                                          component):
    before, after = {"train_cfg": SHORT}, {"train_cfg": SHORT}
    if component == "base":
        after["base_seed"] = 1
    elif component == "init":
        before["cfg"] = after["cfg"] = _cfg(suite, "moe_lora", n_skills=2)
        before["init"] = [_lora(suite, tmp_path / "a", 0), _lora(suite, tmp_path / "b", 1)]
        after["init"] = [before["init"][0], _lora(suite, tmp_path / "c", 2)]
    elif component == "data":
        after_suite = shutil.copytree(suite, tmp_path / "suite")
        lines = (after_suite / "train.jsonl").read_text().splitlines(keepends=True)
        (after_suite / "train.jsonl").write_text("".join(lines[1:]))
    assert _run(suite, tmp_path / "w", stop_after=1, **before) is None
    if component == "code":  # a trainer edit between the killed job and its rerun
        monkeypatch.setattr(lineage, "SRC", _edited_src(tmp_path, "orchmoe/training/trainer.py"))
    with caplog.at_level(logging.WARNING, logger="orchmoe.training.trainer"):
        model = _run(tmp_path / "suite" if component == "data" else suite, tmp_path / "w", **after)
    assert model.resumed_from_step is None and not _log_lines(caplog, "resuming from")
    assert _log_lines(caplog, "not resuming") == [f"not resuming from {tmp_path / 'w' / 'step-1'}: made with "
                                                  f"different {component}; starting from step 0"]


def test_a_run_that_does_not_resume_ends_as_a_run_from_scratch(tmp_path, suite, caplog):
    assert _run(suite, tmp_path / "w", train_cfg=SHORT, stop_after=1) is None
    with caplog.at_level(logging.WARNING, logger="orchmoe.training.trainer"):
        changed = _run(suite, tmp_path / "w", seed=1, train_cfg=SHORT)
    assert _log_lines(caplog, "not resuming") == [f"not resuming from {tmp_path / 'w' / 'step-1'}: made with "
                                                  "different seed; starting from step 0"]
    fresh = _run(suite, tmp_path / "w2", seed=1, train_cfg=SHORT)
    a, b = changed.adapter_state_dict(), fresh.adapter_state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # seed 1 started from step 0, not from seed 0's step 1


def test_an_edit_to_code_training_does_not_run_still_resumes(tmp_path, suite, monkeypatch, caplog):
    assert _run(suite, tmp_path / "w", train_cfg=SHORT, stop_after=1) is None
    monkeypatch.setattr(lineage, "SRC", _edited_src(tmp_path, "orchmoe/report/tables.py"))
    with caplog.at_level(logging.WARNING, logger="orchmoe.training.trainer"):
        assert _run(suite, tmp_path / "w", train_cfg=SHORT).resumed_from_step == 1
    assert len(_log_lines(caplog, "resuming from")) == 1 and not _log_lines(caplog, "not resuming")


def test_state_of_an_older_orchmoe_is_not_resumed(tmp_path, suite, caplog):
    assert _run(suite, tmp_path / "w", train_cfg=SHORT, stop_after=1) is None
    (tmp_path / "w" / "step-1" / "state.json").write_text(json.dumps({"step": 1, "fingerprint": "0" * 32}))
    with caplog.at_level(logging.WARNING, logger="orchmoe.training.trainer"):
        assert _run(suite, tmp_path / "w", train_cfg=SHORT).resumed_from_step is None
    assert _log_lines(caplog, "not resuming") == [f"not resuming from {tmp_path / 'w' / 'step-1'}: its fingerprint has "
                                                  "no components (written by an older orchmoe); starting from step 0"]


def test_cli_base_md5_follows_the_loading_spec_and_the_files(tmp_path):
    model = build_tiny("t5")
    tiny = {"source": "tiny", "arch": "t5"}
    assert base_md5(json.dumps(tiny), model) == base_md5(json.dumps({**tiny, "resources": {"gpu": 1}}), model)
    assert base_md5(json.dumps(tiny), model) != base_md5(json.dumps({**tiny, "seed": 1}), model)
    assert base_md5(json.dumps(tiny), model) != base_md5(json.dumps({**tiny, "d_model": 48}), model)
    model.save_pretrained(tmp_path / "base")
    before = base_md5(str(tmp_path / "base"), model)
    config = tmp_path / "base" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "dropout_rate": 0.2}))
    assert base_md5(str(tmp_path / "base"), model) != before  # a config-only change: the weights are the same
    (tmp_path / "base" / "fetch.json").write_text("{}")  # a fetched base: its file list with md5s stands for it
    fetched = base_md5(str(tmp_path / "base"), model)
    (tmp_path / "base" / "fetch.json").write_text('{"files": {}}')
    assert base_md5(str(tmp_path / "base"), model) != fetched


def test_cli_resume_is_recorded_in_run_json_and_a_finished_run_leaves_no_state(tmp_path, suite):
    spec, raw = _tiny_spec("t5"), {"method": "lora", "target_modules": TARGETS["t5"], "rank": 2}
    args = ["train", "--base", spec, "--data", str(suite), "--adapter-config", json.dumps(raw),
            "--train-config", json.dumps(SHORT), "--seed", "3"]
    base, tokenizer = load_base(base_spec(spec))  # a job killed after step 1, with the fingerprint the CLI computes
    assert train(base, tokenizer, suite, _cfg(suite), TrainConfig.from_dict(SHORT), 3, tmp_path / "w", stop_after=1,
                 base_md5=base_md5(spec, base)) is None
    (tmp_path / "w" / "notes.txt").write_text("not ours")
    assert main([*args, "--out", str(tmp_path / "resumed"), "--work", str(tmp_path / "w")]) == 0
    assert main([*args, "--out", str(tmp_path / "whole"), "--work", str(tmp_path / "w2")]) == 0
    resumed, whole = (json.loads((tmp_path / name / "run.json").read_text()) for name in ("resumed", "whole"))
    assert resumed["resumed_from_step"] == 1 and whole["resumed_from_step"] is None
    assert resumed["fingerprint"] == whole["fingerprint"] and set(whole["fingerprint"]) >= {"code", "base", "init"}
    weights = "orchmoe_adapter.safetensors"
    assert resumed["outputs"][weights]["md5"] == whole["outputs"][weights]["md5"]  # the same run, resumed exactly
    # no step checkpoint is left to resume into; a folder holding other files is kept, an empty one goes
    assert [p.name for p in (tmp_path / "w").iterdir()] == ["notes.txt"] and not (tmp_path / "w2").exists()


CALLED = []


def _mark():
    CALLED.append("unpickled")
    return {}


class _Payload:
    def __reduce__(self):
        return _mark, ()


def test_resume_state_holding_a_pickled_object_is_refused(tmp_path, suite):
    assert _run(suite, tmp_path / "w", train_cfg=SHORT, stop_after=1) is None
    state_file = tmp_path / "w" / "step-1" / "trainer_state.pt"
    state = torch.load(state_file, weights_only=True)  # what the trainer writes is tensors and plain containers
    torch.save({**state, "rng": _Payload()}, state_file)
    with pytest.raises(TrainingError, match=r"trainer_state\.pt: refused, it holds more than tensors .*"
                       r"\(Unsupported global: GLOBAL .*_mark was not an allowed global by default\); delete "):
        _run(suite, tmp_path / "w", train_cfg=SHORT)
    assert CALLED == []
    torch.load(state_file, weights_only=False)  # the payload is live: an unrestricted load would have run it
    assert CALLED == ["unpickled"]


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
