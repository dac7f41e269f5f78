"""Train -> evaluate end to end for every method on tiny models (fixtures: tests/training/conftest.py)."""
from __future__ import annotations

import json

import pytest

from orchmoe.adapters import registry
from orchmoe.adapters.config import METHODS
from orchmoe.cli import main
from orchmoe.metrics.superni import compute_metrics

from .conftest import FAST, TARGETS
from .conftest import tiny_spec as _tiny_spec


@pytest.mark.parametrize("arch", ["t5", "llama"])
@pytest.mark.parametrize("method", METHODS)
def test_train_then_evaluate_every_method(tmp_path, suite, arch, method):
    adapter = {"method": method, "target_modules": TARGETS[arch], "rank": 2}
    if registry.get(method).multi_head:  # MHR: two heads
        adapter["n_splits"] = 2
    out, ev = tmp_path / "ckpt", tmp_path / "eval"
    assert main(["train", "--base", _tiny_spec(arch), "--data", str(suite), "--adapter-config", json.dumps(adapter),
                 "--train-config", json.dumps(FAST), "--seed", "1", "--out", str(out), "--work",
                 str(tmp_path / "work")]) == 0
    assert {"orchmoe_adapter.safetensors", "orchmoe_adapter.json", "train_log.csv", "routing.json", "run.json"} <= \
        {p.name for p in out.iterdir()}
    if method != "lora":  # router diagnostics per block at every log_every step (training/diagnostics.py)
        log = (out / "router_log.csv").read_text().splitlines()
        assert log[0].startswith("step,block,") and "grad_norm" in log[0] and len(log) > 6
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == 1 and run["config"]["adapter"]["method"] == method
    assert run["outputs"]["orchmoe_adapter.safetensors"]["md5"] and run["inputs"]["data"]["md5"]
    assert main(["evaluate", "--base", _tiny_spec(arch), "--checkpoint", str(out), "--data", str(suite),
                 "--out", str(ev), "--max-source-length", "96", "--max-target-length", "12"]) == 0
    metrics = json.loads((ev / "metrics.json").read_text())
    assert set(metrics["mean"]) >= {"exact_match", "rouge1", "rougeL", "rougeLsum", "bleu", "perplexity"}
    assert len(metrics["per_task"]) == 4 and metrics["n"] == 8
    rows = [json.loads(line) for line in (ev / "predictions.jsonl").read_text().splitlines()]
    if method == "moa":  # the percentage of rows whose predicted domain is the gold one, recomputed here
        gold = [(r["predicted_domain"], r["domain_id"]) for r in rows if r["domain_id"] is not None]
        assert gold and metrics["mean"]["router_accuracy"] == pytest.approx(
            100 * sum(p == g for p, g in gold) / len(gold), abs=1e-3)
    recomputed = compute_metrics([r["prediction"] for r in rows], [r["references"] for r in rows])
    assert recomputed["rougeL"] == metrics["mean"]["rougeL"]


def test_moa_reports_router_and_classifier_accuracy(tmp_path, suite):
    two = tmp_path / "two-domains"  # the fixture suite has one domain: relabel its tasks into two
    two.mkdir()
    manifest = json.loads((suite / "manifest.json").read_text()) | {"domains": ["a", "b"]}
    (two / "manifest.json").write_text(json.dumps(manifest))
    for split in ("train", "eval", "unseen"):
        rows = [json.loads(line) for line in (suite / f"{split}.jsonl").read_text().splitlines()]
        (two / f"{split}.jsonl").write_text("".join(json.dumps(r | {"domain": "ab"[r["task_id"] % 2],
                                                                    "domain_id": r["task_id"] % 2}) + "\n" for r in rows))
    adapter = json.dumps({"method": "moa", "target_modules": TARGETS["t5"], "rank": 2})
    assert main(["train", "--base", _tiny_spec("t5"), "--data", str(two), "--adapter-config", adapter,
                 "--train-config", json.dumps(FAST), "--out", str(tmp_path / "c"), "--work", str(tmp_path / "w")]) == 0
    assert main(["evaluate", "--base", _tiny_spec("t5"), "--checkpoint", str(tmp_path / "c"), "--data", str(two),
                 "--out", str(tmp_path / "e"), "--max-source-length", "96", "--max-target-length", "12"]) == 0
    mean = json.loads((tmp_path / "e" / "metrics.json").read_text())["mean"]
    rows = [json.loads(line) for line in (tmp_path / "e" / "predictions.jsonl").read_text().splitlines()]
    assert mean["router_accuracy"] == pytest.approx(
        100 * sum(r["predicted_domain"] == r["domain_id"] for r in rows) / len(rows), abs=1e-3)
    # an accuracy over the n eval rows: a whole number of correct rows between 0 and n
    correct = mean["classifier_accuracy"] * len(rows) / 100
    assert correct == pytest.approx(round(correct), abs=1e-2) and 0 <= round(correct) <= len(rows)
    assert {r["domain_id"] for r in rows} == {0, 1} and all(r["predicted_domain"] in (0, 1) for r in rows)
    # the classifier's prediction per example (MoA Table 3 per domain) gives back the pooled accuracy
    hits = [r["classifier_domain"] == r["domain_id"] for r in rows]
    assert mean["classifier_accuracy"] == round(100.0 * sum(hits) / len(hits), 4)
    assert "train_data" in json.loads((tmp_path / "e" / "run.json").read_text())["inputs"]  # classifier's input




def test_glm_twin_trains_and_evaluates_with_beam_search(tmp_path, suite):
    """The GLM layout (fused q, k, v as three LoRAs) end to end; --num-beams 2 keeps one routing row per example."""
    adapter = json.dumps({"method": "orchmoe", "target_modules": ["query_key_value:q,k,v"], "rank": 2})
    base = _tiny_spec("glm")
    assert main(["train", "--base", base, "--data", str(suite), "--adapter-config", adapter, "--train-config",
                 json.dumps(FAST), "--out", str(tmp_path / "c"), "--work", str(tmp_path / "w")]) == 0
    rows = {}
    for beams in (1, 2):
        out = tmp_path / f"e{beams}"
        assert main(["evaluate", "--base", base, "--checkpoint", str(tmp_path / "c"), "--data", str(suite),
                     "--out", str(out), "--max-source-length", "96", "--max-target-length", "12",
                     "--num-beams", str(beams)]) == 0
        rows[beams] = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
        assert json.loads((out / "run.json").read_text())["config"]["num_beams"] == beams
    assert len(rows[2]) == len(rows[1]) == 8
    # routing reads the prompt only: the same skill weights per example whatever the decoding
    for a, b in zip(rows[1], rows[2]):
        assert a["id"] == b["id"] and a["skill_weights"] == pytest.approx(b["skill_weights"], abs=1e-4)
    assert main(["evaluate", "--base", base, "--checkpoint", "none", "--data", str(suite), "--out",
                 str(tmp_path / "bad"), "--num-beams", "0"]) == 2
