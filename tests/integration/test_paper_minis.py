"""Both papers' miniature twins (config/paper-*-mini.yaml: the paper DAGs with tiny bases and small data) run end to
end through `dvc repro` in a fresh clone, exactly as a researcher would run the paper configs: every table and
figure of the papers' layouts exists and holds numbers, and `dvc status` is clean afterwards.
Minutes of CPU: marked integration."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import yaml

from orchmoe.io import read_jsonl

from .conftest import REPO, copy_checkout, run

pytestmark = pytest.mark.integration

MINIS = ["paper-orchmoe-mini", "paper-moa-mini"]


@pytest.fixture(scope="module", params=MINIS)
def repro(request, tmp_path_factory):
    name = request.param
    root = tmp_path_factory.mktemp(name)
    (root / "repo").mkdir()
    repo = copy_checkout(root / "repo")
    if (REPO.parent / "shared").is_dir():  # the OrchMoE mini reads ../shared/data/superni-sample
        os.symlink(REPO.parent / "shared", root / "shared")
    cfg = f"config/{name}.yaml"
    run(["snakemake", "dvc_yaml", "--cores", "1", "--configfile", cfg, "--forcerun", "dvc_yaml"], repo,
        f"{name}: generate dvc.yaml")
    for step, cmd in (("init", ["git", "init", "-q"]), ("add", ["git", "add", "-A"]),
                      ("commit", ["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost", "commit", "-qm", "ci"])):
        run(cmd, repo, f"{name}: git {step}")
    # `orchmoe warm`: hundreds of second-long jobs, each would otherwise spend ~3 s importing torch + transformers
    run(["orchmoe", "warm", "--", "dvc", "repro"], repo, f"{name}: dvc repro (whole paper DAG, toy scale)",
        timeout=1800)
    return name, repo, yaml.safe_load((repo / cfg).read_text())


def test_every_paper_table_and_figure_holds_numbers(repro):
    name, repo, cfg = repro
    tables, figures = repo / f"results/tables/{name}", repo / f"results/figures/{name}"
    for table, spec in cfg["report"]["tables"].items():
        wide = pd.read_csv(tables / f"paper/{table}.csv")
        md = (tables / f"paper/{table}.md").read_text()
        tex = (tables / f"paper/{table}.tex").read_text()
        assert len(wide) and spec["caption"] in md, table
        # one table in three formats: the same rows (+ the header) in each
        assert sum(line.startswith("| ") for line in md.splitlines()) == len(wide) + 1, table
        assert tex.count(" \\\\\n") == len(wide) + 1, table
        if spec["layout"] != "params":
            rows = pd.read_csv(tables / "paper/long.csv")
            rows = rows[rows.table == table].dropna(axis=1, how="all")
            value = next(c for c in ("mean", "router_accuracy") if c in rows.columns)
            assert rows[value].notna().any(), (table, rows.head())
            if "n_seeds" in rows.columns:  # every cell averages the paper's seeds, as at paper scale
                assert (rows.n_seeds.dropna() == len(cfg["seeds"])).all() and len(cfg["seeds"]) == 3, table
    for fig in cfg["report"].get("figures", {}):
        assert (figures / f"paper/{fig}.png").stat().st_size > 5000 and (figures / f"paper/{fig}.pdf").is_file()
        assert len(pd.read_csv(figures / f"paper/{fig}.csv")) > 1
    assert (tables / "main.md").is_file() and (tables / "paper/params.csv").is_file()


def test_orchmoe_tables_have_every_cell(repro):
    name, repo, cfg = repro
    if name != "paper-orchmoe-mini":
        pytest.skip("OrchMoE layout")
    t = repo / f"results/tables/{name}/paper"
    for table in ("table1", "table2", "table3"):
        rows = pd.read_csv(t / "long.csv")
        rows = rows[rows.table == table]
        assert rows["mean"].notna().all() and (rows.n_seeds == len(cfg["seeds"])).all(), table
        assert set(rows.metric) == {"rouge1", "rougeL", "rougeLsum"}
    t4 = pd.read_csv(t / "long.csv")
    t4 = t4[t4.table == "table4"]
    n_tasks = cfg["suites"]["ni100"]["n_tasks"]  # T = number of tasks: the `orchmoe` run itself
    assert list(dict.fromkeys(t4.n_abstract_tasks)) == sorted({n_tasks, 80, 60, 40, 20}, reverse=True)
    assert set(t4.split) == {"eval", "unseen"} and t4["mean"].notna().all()
    assert not t4.ratio.eq("–").any()


def test_moa_tables_per_domain(repro):
    name, repo, cfg = repro
    if name != "paper-moa-mini":
        pytest.skip("MoA layout")
    t = repo / f"results/tables/{name}/paper"
    domains = cfg["suites"]["moa8"]["domains"]
    long = pd.read_csv(t / "long.csv")
    t2 = long[long.table == "table2"]
    assert list(dict.fromkeys(t2.domain)) == domains + ["Average"] and t2["mean"].notna().all()
    t3 = long[long.table == "table3"].set_index("domain")
    assert list(t3.index) == domains + ["Average"]
    # every domain's cell recounted from the evaluations: the percent of its prompts routed (classified) to it,
    # averaged over the seeds
    spec = cfg["report"]["tables"]["table3"]
    evals = repo / f"results/eval/{name}/{spec['suite']}/{spec['base']}/{spec['run']}"
    preds = [read_jsonl(f) for f in sorted(evals.glob("seed*/eval/predictions.jsonl"))]
    assert len(preds) == len(cfg["seeds"]), evals
    for i, d in enumerate(domains):
        for column, field in (("router_accuracy", "predicted_domain"), ("classifier_accuracy", "classifier_domain")):
            per_seed = [100 * np.mean([p[field] == i for p in rows if p["domain_id"] == i]) for rows in preds]
            assert t3.loc[d, column] == pytest.approx(np.mean(per_seed), abs=1e-3), (d, column)


def test_status_clean_after_repro(repro):
    name, repo, _ = repro
    assert "up to date" in run(["dvc", "status"], repo, f"{name}: dvc status").stdout
