"""The papers' layouts (config `report:` of config/paper-*.yaml) on synthetic results at paper scale: 3 seeds,
100 tasks, every run of the paper DAG; numbers land in the right cells, rows in the papers' order, figures readable."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import save_file

from orchmoe.io import write_json, write_jsonl
from orchmoe.report.paper_figures import build_paper_figures
from orchmoe.report.paper_tables import build_paper_tables

REPO = Path(__file__).resolve().parents[2]


def _long(root, table):
    df = pd.read_csv(root / "tables/long.csv")
    return df[df.table == table].dropna(axis=1, how="all").reset_index(drop=True)


def _runs(cfg):
    """(suite, base, run, entry, adapter, splits) of the config, named as workflow/rules/common.smk names them."""
    for entry, spec in cfg["methods"].items():
        for suite in spec.get("suites", list(cfg["suites"])):
            for base in spec.get("bases", list(cfg["bases"])):
                sweep = spec.get("sweep") or {}
                keys = sorted(sweep)
                for values in itertools.product(*(sweep[k] for k in keys)) if keys else [()]:
                    point = dict(zip(keys, values))
                    name = entry + "".join(f"-{k}{v}" for k, v in point.items())
                    adapter = {k: v for k, v in spec.items() if k not in ("suites", "bases", "sweep", "train",
                                                                          "splits", "per_domain", "init_from")}
                    adapter.update(point)
                    has_unseen = cfg["suites"][suite].get("n_unseen", 0) > 0
                    splits = [s for s in (["eval", "unseen"] if has_unseen else ["eval"])
                              if s in spec.get("splits", ["eval", "unseen"])]
                    domains = cfg["suites"][suite].get("domains") if spec.get("per_domain") else None
                    for d in domains or [None]:
                        yield suite, base, name + (f"@{d}" if d else ""), adapter, splits


def _score(run: str, seed: int, split: str) -> float:
    return 30.0 + (hash(run) % 30) + seed + (0 if split == "eval" else -10)


def _write(root, exp, suite, base, run, seed, split, adapter, rows, mean, n_params):
    ck = root / f"results/checkpoints/{exp}/{suite}/{base}/{run}/seed{seed}"
    if not ck.is_dir():
        ck.mkdir(parents=True)
        save_file({"w": torch.zeros(n_params, dtype=torch.int8)}, str(ck / "orchmoe_adapter.safetensors"))
        write_json(ck / "run.json", {"config": {"adapter": adapter}})
    d = root / f"results/eval/{exp}/{suite}/{base}/{run}/seed{seed}/{split}"
    d.mkdir(parents=True)
    write_jsonl(d / "predictions.jsonl", rows)
    write_json(d / "metrics.json", {"mean": mean, "n": len(rows)})
    write_json(d / "run.json", {"config": {"base": "hub"}, "inputs": {"data": {
        "path": str(root / f"data/processed/{exp}/{suite}/{split}.jsonl")}}})


@pytest.fixture(scope="module")
def orchmoe(tmp_path_factory):
    root = tmp_path_factory.mktemp("orchmoe")
    cfg = yaml.safe_load((REPO / "config/paper-orchmoe.yaml").read_text())
    exp = cfg["experiment"]
    tasks = [f"task{i:03d}_synthetic_{i % 7}" for i in range(100)]
    write_json(root / f"data/processed/{exp}/ni100/manifest.json", {"tasks": tasks})
    rng = np.random.default_rng(0)
    fig3 = cfg["report"]["figures"]["figure3"]
    params = []
    for suite, base, run, adapter, splits in _runs(cfg):
        if run.startswith("orchmoe") and "n_abstract_tasks" not in adapter:
            adapter = {**adapter, "n_abstract_tasks": cfg["suites"][suite]["n_tasks"]}  # resolved as in run.json
        n_params = 1000 * adapter.get("rank", 1) * adapter.get("n_skills", 1) + adapter.get("n_abstract_tasks", 0)
        params.append({"suite": suite, "base": base, "run": run, "ratio_percent": n_params / 1e6})
        for seed, split in itertools.product(cfg["seeds"], splits):
            rows = [{"task": "t", "prediction": "x", "references": ["x"]}]
            if (suite, base, run) == (fig3["suite"], fig3["base"], fig3["run"]) and split == "eval":
                group = rng.normal(size=(7, 192))  # 48 blocks x 4 skills, 7 groups of similar tasks
                rows = [{"task": t, "prediction": "x", "references": ["x"],
                         "skill_weights": (group[i % 7] + 0.05 * rng.normal(size=192)).tolist()}
                        for i, t in enumerate(tasks)]
            s = _score(run, seed, split)
            _write(root, exp, suite, base, run, seed, split, adapter, rows,
                   {"rouge1": s + 1, "rougeL": s, "rougeLsum": s + 0.5}, n_params)
    pd.DataFrame(params).to_csv(root / "params.csv", index=False)
    build_paper_tables(root / "results", exp, cfg["report"]["tables"], root / "tables", root / "params.csv")
    build_paper_figures(root / "results", exp, cfg["report"]["figures"], root / f"data/processed/{exp}",
                        root / "figures")
    return root, cfg


def test_orchmoe_tables_1_to_3_layout(orchmoe):
    root, cfg = orchmoe
    t1 = _long(root, "table1")
    cell = t1[(t1.base == "glm-10b") & (t1.run == "poly") & (t1.suite == "ni100") & (t1.metric == "rougeL")].iloc[0]
    assert cell["mean"] == pytest.approx(np.mean([_score("poly", s, "eval") for s in cfg["seeds"]]))
    assert cell.n_seeds == 3
    md = (root / "tables/table1.md").read_text().splitlines()
    header = md[2]
    for col in ("Train and Testing on 10 Tasks: Rouge1", "Train and Testing on 100 Tasks: RougeLsum"):
        assert col in header
    body = [line.split(" | ")[1].strip() for line in md[4:]]
    assert body == ["LoRA", "MoE-LoRA", "Poly", "MHR", "OrchMoE"] * 2
    t2 = _long(root, "table2")
    assert set(t2.split) == {"unseen"} and t2["mean"].notna().all()
    t3 = _long(root, "table3")
    assert set(t3.base) == {"glm-2b", "glm-10b"} and set(t3.run) == {f"{m}_e10" for m in
                                                                   ("lora", "moe_lora", "poly", "mhr", "orchmoe")}


def test_orchmoe_table4_rows_in_numeric_order_with_ratio(orchmoe):
    root, _ = orchmoe
    t4 = _long(root, "table4")
    assert list(dict.fromkeys(t4.n_abstract_tasks)) == [100, 80, 60, 40, 20]  # T = 100 is the orchmoe run
    assert t4[t4.n_abstract_tasks == 100].run.iloc[0] == "orchmoe"
    assert set(t4.split) == {"eval", "unseen"} and t4["mean"].notna().all()
    md = (root / "tables/table4.md").read_text()
    assert "| 100 | 0.02%" in md and "train on 100 tasks and testing on 10 new tasks: rougeLsum" in md


def test_figure2_one_line_per_method_across_ranks(orchmoe):
    root, _ = orchmoe
    pts = pd.read_csv(root / "figures/figure2.csv")
    assert sorted(pts.line.unique()) == ["LoRA", "MHR", "MoE-LoRA", "OrchMoE", "Poly"]
    assert (pts.groupby("line").size() == 4).all()  # the Table 1 rank + 3 sweep points
    w, h = Image.open(root / "figures/figure2.png").size
    assert w < 1500 and h < 1000


def test_figure3_one_run_in_dendrogram_order_readable_at_100_tasks(orchmoe):
    root, _ = orchmoe
    order = pd.read_csv(root / "figures/figure3.csv")
    assert len(order) == 100 and order.task.is_unique
    groups = [int(t.rsplit("_", 1)[1]) for t in order.task]  # similar tasks end up next to each other
    assert sum(a != b for a, b in zip(groups, groups[1:])) == 6
    w, h = Image.open(root / "figures/figure3.png").size
    assert 1000 < w < 2000 and h < 2500  # about 10 px per task row; one panel, not one per routed run


@pytest.fixture(scope="module")
def moa(tmp_path_factory):
    root = tmp_path_factory.mktemp("moa")
    cfg = yaml.safe_load((REPO / "config/paper-moa.yaml").read_text())
    exp, domains = cfg["experiment"], cfg["suites"]["moa8"]["domains"]
    write_json(root / f"data/processed/{exp}/moa8/manifest.json", {"tasks": domains, "domains": domains})
    for suite, base, run, adapter, _ in _runs(cfg):
        own = run.split("@")[1] if "@" in run else None
        for seed in cfg["seeds"]:
            rows = []
            for i, d in enumerate(domains):
                if own and d != own:
                    continue  # a single LoRA is evaluated on its own domain
                for k in range(3):
                    good = (k + i + seed) % 3 != 0
                    rows.append({"task": d, "domain_id": i, "prediction": f"answer {d}" if good else "other",
                                 "references": [f"answer {d}"], "target_nll": 2.0 + i, "target_tokens": 2,
                                 **({"predicted_domain": i if good else (i + 1) % 8, "classifier_domain": i}
                                    if run == "moa" else {})})
            if adapter["method"] == "moa":
                adapter = {**adapter, "n_skills": 8}  # resolved from the suite in run.json
            n = 64 * (8 if adapter["method"] in ("moa", "moe_lora") else 1) + (8 if adapter["method"] == "moa" else 0)
            _write(root, exp, suite, base, run, seed, "eval", adapter, rows, {"rougeL": 1.0}, n)
    build_paper_tables(root / "results", exp, cfg["report"]["tables"], root / "tables")
    return root, domains


def test_moa_tables(moa):
    root, domains = moa
    t2 = _long(root, "table2")
    assert list(dict.fromkeys(t2.domain)) == domains + ["Average"]
    ppl = t2[(t2.run == "single") & (t2.metric == "perplexity")].set_index("domain")["mean"]
    # per-token NLL (2 + i) / 2 tokens: each domain's own single LoRA (the diagonal), the mean over domains
    assert ppl["finance"] == pytest.approx(np.exp(1.0), rel=1e-3) and ppl["medicine"] == pytest.approx(np.exp(1.5), rel=1e-3)
    assert ppl["Average"] == pytest.approx(np.mean([np.exp((2.0 + i) / 2) for i in range(8)]), rel=1e-3)
    t3 = _long(root, "table3").set_index("domain")
    assert t3.loc["finance", "classifier_accuracy"] == 100.0 and t3.loc["finance", "test_size"] == 3
    # the router is right on 2 of each domain's 3 prompts, every seed ((k + i + seed) % 3 != 0): 66.67 % everywhere
    assert (t3["router_accuracy"] == 66.6667).all()
    assert "| trainable parameters | 64 | 64 | 64*8+8 |" in (root / "tables/table4.md").read_text()
    t7 = (root / "tables/table7.md").read_text()
    assert "| MoE-LoRA (naive) |" in t7 and t7.index("| MoE-LoRA |") < t7.index("| MoE-LoRA (naive) |")
    t8 = _long(root, "table8")
    assert set(t8.run) == {"single", "moe_lora", "moa"} and set(t8.metric) == {"perplexity"}
