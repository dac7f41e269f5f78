"""Tables, figures and trace on a small synthetic results tree laid out as the workflow writes it."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from orchmoe.errors import DataError
from orchmoe.io import md5_file, md5_path, write_json, write_jsonl
from orchmoe.report.figures import build_figures
from orchmoe.report.tables import build_tables, floor_gaps
from orchmoe.report.trace import trace

TASKS = ["task1_a_x", "task2_a_y", "task3_b_x", "task4_b_y"]
TRUTH = {"task1_a_x": "a", "task2_a_y": "a", "task3_b_x": "b", "task4_b_y": "b"}


def _eval(d: Path, score: float, base_dir: Path, ckpt: Path | None, routed: bool, router_acc=None):
    d.mkdir(parents=True)
    rows = []
    for t in TASKS:
        row = {"task": t, "prediction": "x", "references": ["x"]}
        if routed:  # tasks of the same ground-truth group get similar skill weights
            row["skill_weights"] = [0.9, 0.1] if TRUTH[t] == "a" else [0.1, 0.9]
        rows.append(row)
    write_jsonl(d / "predictions.jsonl", rows)
    mean = {"exact_match": score, "rougeL": score, "rougeLsum": score, "bleu": 1.0}
    if router_acc is not None:
        mean["router_accuracy"] = router_acc
    write_json(d / "metrics.json", {"mean": mean, "n": 4, "per_task": {t: dict(mean, rougeL=score + i)
                                                                       for i, t in enumerate(TASKS)}})
    inputs = {"data": {"path": "data/s/eval.jsonl", "md5": "d" * 32}, "base": {"path": str(base_dir), "md5": "b" * 32}}
    if ckpt:
        inputs["checkpoint"] = {"path": str(ckpt), "md5": "c" * 32}
    write_json(d / "run.json", {"command": "orchmoe evaluate ...", "config": {"base": str(base_dir)},
                                "inputs": inputs, "outputs": {"predictions.jsonl": {"md5": md5_file(d / "predictions.jsonl")}}})


def _ckpt(d: Path, method: str, n: int, data_dir: Path):
    d.mkdir(parents=True)
    save_file({"w": torch.zeros(n)}, str(d / "orchmoe_adapter.safetensors"))
    (d / "train_log.csv").write_text("step,epoch,loss,lm_loss\n1,0,2.0,2.0\n2,0,1.0,1.0\n")
    write_json(d / "run.json", {"seed": 0, "git": {"commit": "abc", "dirty": False},
                                "config": {"adapter": {"method": method, "rank": 2}, "train": {"lr": 0.1}},
                                "inputs": {"data": {"path": str(data_dir), "md5": md5_path(data_dir)}}})


@pytest.fixture
def tree(tmp_path):
    data = tmp_path / "data/processed/t/s"
    data.mkdir(parents=True)
    write_json(data / "manifest.json", {"tasks": TASKS, "domains": ["a", "b"], "seed": 0, "params": {"n_train": 4},
                                        "sources": {"task1_a_x": "e" * 32}})
    base = tmp_path / "models/t/tiny"
    base.mkdir(parents=True)
    save_file({"w": torch.zeros(1000)}, str(base / "model.safetensors"))
    res = tmp_path / "results"
    _eval(res / "eval/t/s/tiny/base/seed0/eval", 0.0, base, None, False)
    for method, n, seeds, acc in (("lora", 40, (0, 1), None), ("orchmoe", 20, (0,), None), ("moa", 30, (0,), 75.0)):
        for seed in seeds:
            ck = res / f"checkpoints/t/s/tiny/{method}/seed{seed}"
            _ckpt(ck, method, n, data)
            _eval(res / f"eval/t/s/tiny/{method}/seed{seed}/eval", 40.0 + 10 * seed, base, ck, method != "lora", acc)
    skills = tmp_path / "skills.json"
    write_json(skills, {"domains": TRUTH})
    return tmp_path, res, data, skills


def test_tables_hold_the_numbers(tree):
    root, res, _, _ = tree
    out = root / "tables"
    agg = build_tables(res, "t", out)
    md = (out / "main.md").read_text()
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    assert lines[1].startswith("| s | eval | Base model (no adapter) | 0.00 ± — |")  # floor row first; one seed: no sd
    assert [line.split(" | ")[2] for line in lines[1:]] == ["Base model (no adapter)", "LoRA", "OrchMoE", "MoA"]
    assert "| s | eval | LoRA | 45.00 ± 7.07 |" in md and md.rstrip().endswith("| 1 |")  # mean ± sd, seeds
    assert "45.00 $\\pm$ 7.07" in (out / "main.tex").read_text()
    params_md = [line for line in (out / "params.md").read_text().splitlines() if line.startswith("| tiny")]
    assert [line.split(" | ")[1] for line in params_md] == ["LoRA", "OrchMoE", "MoA"]  # same order as the main table
    tex = (out / "main.tex").read_text()
    assert "\\caption{Experiment t: mean $\\pm$ sd" in tex and "\\label{tab:t-main}" in tex
    main = pd.read_csv(out / "main.csv")  # the same wide shape as main.md
    assert list(main.columns) == [c.strip() for c in lines[0].strip("| ").split(" | ")]
    assert main[main.Method == "LoRA"].iloc[0]["tiny RougeLsum"] == "45.00 ± 7.07"
    params = pd.read_csv(out / "params.csv", dtype=str)
    lora = params[params.Method == "LoRA"].iloc[0]
    assert (lora["Trainable params"], lora["Base params"], lora["Adapter / base (%)"]) == ("40", "1,000", "4.000")
    assert "| tiny | LoRA | 40 | 1,000 | 4.000 |" in (out / "params.md").read_text()
    assert "tiny & LoRA & 40 & 1,000 & 4.000 \\\\" in (out / "params.tex").read_text()
    long = pd.read_csv(out / "metrics_long.csv")
    assert set(long.seed) == {0, 1} and "bleu" in set(long.metric)
    assert json.loads((out / "summary.json").read_text())["s/eval"]["tiny"]["moa"]["router_accuracy"] == 75.0
    assert floor_gaps(agg)["s/eval/tiny/orchmoe"] == 40.0


def test_figures_and_clustering_score(tree):
    root, res, data, skills = tree
    out = root / "figures"
    build_figures(res, "t", data, out, skills)
    for name in ("training_curves", "score_vs_params", "task_clustering", "router_accuracy"):
        assert (out / f"{name}.png").stat().st_size > 1000 and (out / f"{name}.pdf").is_file()
    ari = pd.read_csv(out / "task_clustering.csv")
    assert set(ari.method) == {"orchmoe", "moa"}  # routed methods with task-level routing
    assert (ari.adjusted_rand_index == 1.0).all()  # the synthetic routing separates the two groups exactly


def test_trace_walks_down_to_data_and_base(tree, monkeypatch):
    root, res, _, _ = tree
    build_tables(res, "t", root / "tables")
    ck = res / "checkpoints/t/s/tiny/orchmoe/seed0"
    lock = root / "dvc.lock"
    lock.write_text(f"schema: '2.0'\nstages:\n  train:\n    outs:\n    - path: {ck}\n      md5: 1234.dir\n")
    lines = trace(root / "tables", "tiny", "orchmoe", "rougeLsum", lock_file=lock)
    text = "\n".join(lines)
    assert "= 40.0" in lines[0]
    assert f"md5={md5_file(ck / 'orchmoe_adapter.safetensors')}" in text
    assert "stage train: out" in text and "md5=1234.dir" in text
    assert "source       task1_a_x md5=" + "e" * 32 in text
    assert "base model" in text and "b" * 32 in text
    with pytest.raises(DataError, match="no row for base='tiny' run='poly'"):
        trace(root / "tables", "tiny", "poly", "rougeLsum", lock_file=lock)


def test_skill_recovery_router_diagnostics_and_routing_summary(tree):
    root, res, data, _ = tree
    skills = root / "skills_full.json"
    write_json(skills, {"domains": TRUTH, "skills": {t: [TRUTH[t], t[-1]] for t in TASKS}})
    (res / "checkpoints/t/s/tiny/orchmoe/seed0/router_log.csv").write_text(  # ends near-uniform: warned
        "step,block,weight_dist_uniform,weight_spread,weight_entropy,grad_norm,task_entropy\n"
        "1,encoder.block.0,0.20,0.10,0.5,0.1,0.9\n2,encoder.block.0,0.01,0.001,0.99,0.0,0.0\n")
    out = root / "figures"
    build_figures(res, "t", data, out, skills)
    assert (out / "router_diagnostics.png").stat().st_size > 1000
    diag = pd.read_csv(out / "router_diagnostics.csv")
    assert diag.set_index("method").loc["orchmoe", "warning"].startswith("near-uniform routing")
    rec = pd.read_csv(out / "skill_recovery.csv")
    assert set(rec.method) == {"orchmoe", "moa"} and (rec.n_clusters == 3).all()
    # Both route {a,x} and {a,y} to [.9, .1], {b,x} and {b,y} to [.1, .9]. Over the 6 task pairs the routing
    # similarity (0 or -1.13) and the Jaccard overlap (1/3 or 0) have ranks [5.5, 2.5 x4, 5.5] and
    # [4.5, 4.5, 1.5, 1.5, 4.5, 4.5]: Spearman 6 / 12 = 0.5. Spread: each weight's sd over the tasks is 0.4.
    assert (rec.spearman == 0.5).all() and (rec.routing_spread == 0.4).all()
    summary = (out / "routing_summary.md").read_text()
    assert "| tiny | OrchMoE | 40.00 ± — |" in summary and "1 of 1 seeds" in summary


def test_study_table_differences_to_lora_with_bootstrap_ci(tree):
    root, res, _, _ = tree
    build_tables(res, "t", root / "tables")
    study = pd.read_csv(root / "tables" / "study.csv").set_index("Method")
    assert study.loc["LoRA", "rougeL"] == "45.00 ± 7.07" and study.loc["OrchMoE", "rougeL"] == "40.00 ± —"
    # OrchMoE seed 0 vs LoRA seed 0, task by task: the same scores -> a zero difference with a zero-width CI
    assert study.loc["OrchMoE", "minus LoRA (95% CI)"] == "+0.00 [+0.00, +0.00]" and str(study.loc["OrchMoE", "pairs"]) == "4"
