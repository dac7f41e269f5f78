"""The reduced demo (config/ci.yaml) through the demo script (what `make demo` runs) end to end, in a copy of the
workflow: tables and figures exist and hold numbers, the HTML report builds, `orchmoe trace` walks one cell, a rerun
has nothing to do.
Minutes of CPU: marked integration (`make integration` / CI=true)."""
from __future__ import annotations

import json
import os
import subprocess

import pandas as pd
import pytest

from .helpers import BIN, copy_workflow, snakemake

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    wf = copy_workflow(tmp_path_factory.mktemp("ci"))
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", "workflow/scripts/demo.sh", "config/ci.yaml"], cwd=wf, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"demo.sh failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert "workflow finished in" in proc.stdout and "Base model (no adapter)" in proc.stdout
    return wf


def test_tables_and_figures_hold_numbers(ran):
    tables, figures = ran / "results/tables/ci", ran / "results/figures/ci"
    long = pd.read_csv(tables / "metrics_long.csv")
    assert {"base", "lora", "moe_lora", "poly", "mhr", "orchmoe", "moa"} <= set(long.method)
    assert long["value"].notna().all() and (long.seed == 0).all()
    main = pd.read_csv(tables / "main.csv")  # wide, as main.md
    assert {"LoRA", "OrchMoE", "MoA"} <= set(main.Method) and (main.Seeds == 1).all()
    assert "Base model (no adapter)" in (tables / "main.md").read_text()
    assert "\\begin{tabular}" in (tables / "main.tex").read_text()
    params = pd.read_csv(tables / "params.csv", dtype=str)
    assert (params["Trainable params"].str.replace(",", "").astype(int) > 0).all()
    metrics = json.loads((ran / "results/eval/ci/builtin/tiny-t5/orchmoe/seed0/eval/metrics.json").read_text())
    summary = json.loads((tables / "summary.json").read_text())["builtin/eval"]["tiny-t5"]["orchmoe"]
    assert summary["rougeLsum"] == pytest.approx(metrics["mean"]["rougeLsum"], abs=0.01)  # one seed: its own value
    for name in ("training_curves", "score_vs_params", "task_clustering", "router_accuracy"):
        assert (figures / f"{name}.png").stat().st_size > 1000 and (figures / f"{name}.pdf").is_file()
    ari = pd.read_csv(figures / "task_clustering.csv")
    assert {"orchmoe", "poly", "mhr"} <= set(ari.method) and ari.adjusted_rand_index.notna().all()
    manifest = json.loads((ran / "data/processed/ci/builtin/manifest.json").read_text())
    skills = json.loads((ran / "data/raw/ci/builtin/skills.json").read_text())["skills"]
    tasks = manifest["tasks"]
    assert (ari.n_tasks == len(tasks)).all()  # every task clustered, cut at as many clusters as distinct skills
    assert (ari.n_clusters == min(len({s for t in tasks for s in skills[t]}), len(tasks) - 1)).all()
    assert (ari.ground_truth == "each task's skill set (skills.json skills)").all()
    assert (ran / "logs/ci/benchmarks/train/builtin/tiny-t5/orchmoe/seed0.tsv").is_file()


def test_moa_started_from_the_single_loras(ran):
    run = json.loads((ran / "results/checkpoints/ci/builtin/tiny-t5/moa/seed0/run.json").read_text())
    assert sorted(k for k in run["inputs"] if k.startswith("init_skill")) == ["init_skill_0", "init_skill_1"]
    assert run["inputs"]["init_skill_0"]["path"].endswith("lora_domain@reverse/seed0")


def test_trace_one_cell(ran):
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    out = subprocess.run([str(BIN / "orchmoe"), "trace", "--tables", "results/tables/ci", "--base", "tiny-t5",
                          "--run", "orchmoe", "--metric", "rougeLsum"], cwd=ran, env=env, capture_output=True,
                         text=True, check=True).stdout
    for part in ("table cell", "metrics", "predictions", "checkpoint", "training", "data", "sampling", "source",
                 "base model"):
        assert any(line.startswith(part) or line.strip().startswith(part) for line in out.splitlines()), part
    assert "models/ci/tiny-t5 md5=" in out
    verified = subprocess.run([str(BIN / "orchmoe"), "trace", "--tables", "results/tables/ci", "--base", "tiny-t5",
                               "--run", "orchmoe", "--verify"], cwd=ran, env=env, capture_output=True, text=True)
    assert verified.returncode == 0, verified.stdout[-2000:] + verified.stderr[-2000:]  # a real run's records hold
    assert verified.stdout.splitlines()[-1].startswith("verify: ok: 1 metrics_long.csv value(s)")


def test_report_and_nothing_left_to_do(ran):
    html = (ran / "results/report/ci.html").read_text(errors="replace")
    assert len(html) > 10000 and "<html" in html.lower()
    out = snakemake("-n", "--configfile", "config/ci.yaml", cwd=ran).stdout
    assert "Nothing to be done" in out
