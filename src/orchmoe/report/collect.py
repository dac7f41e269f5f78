"""Find the workflow's result files and flatten them into one long table (one row per number reported).

Layout (orchmoe.paths, also used by workflow/rules/common.smk): results/eval/<exp>/<suite>/<base>/<run>/seed<seed>/<split>/metrics.json and
results/checkpoints/<exp>/<suite>/<base>/<run>/seed<seed>/; run "base" is the frozen base model, no adapter.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from safetensors import safe_open

from orchmoe.errors import DataError
from orchmoe.io import md5_file, read_jsonl
from orchmoe.paths import BASE_RUN, EVAL_GLOB, checkpoint_dir, parse_eval_dir, parse_run

SCORES = ("exact_match", "rougeL", "rougeLsum")


@dataclass
class Run:
    suite: str
    base: str
    run: str
    seed: int
    split: str
    eval_dir: Path
    checkpoint: Path | None

    @property
    def metrics(self) -> dict:
        return json.loads((self.eval_dir / "metrics.json").read_text())

    @property
    def train_run(self) -> dict:
        return json.loads((self.checkpoint / "run.json").read_text()) if self.checkpoint else {}

    @property
    def method(self) -> str:
        return self.train_run["config"]["adapter"]["method"] if self.checkpoint else "base"

    @property
    def entry(self) -> str:
        """The config's method entry (run name without sweep suffix and domain)."""
        return parse_run(self.run)[0]

    @property
    def domain(self) -> str | None:
        return parse_run(self.run)[2]

    def trainable_params(self) -> int:
        return _numel_file(self.checkpoint / "orchmoe_adapter.safetensors") if self.checkpoint else 0

    def base_params(self) -> int | None:
        eval_run = json.loads((self.eval_dir / "run.json").read_text())
        return _base_params(eval_run["config"]["base"])


def _numel_file(path: Path) -> int:
    n = 0
    with safe_open(str(path), "pt") as f:
        for k in f.keys():
            size = 1
            for d in f.get_slice(k).get_shape():
                size *= d
            n += size
    return n


@lru_cache(maxsize=None)
def _base_params(base: str) -> int | None:
    """Parameter count of a base model folder (its safetensors files); None when not a local folder."""
    files = sorted(Path(base).glob("*.safetensors")) if Path(base).is_dir() else []
    return sum(_numel_file(f) for f in files) if files else None


def collect_runs(results, experiment: str) -> list[Run]:
    root = Path(results) / "eval" / experiment
    runs = []
    for metrics in sorted(root.glob(EVAL_GLOB)):
        d = metrics.parent
        p = parse_eval_dir(d)
        ckpt = Path(checkpoint_dir(experiment, p["suite"], p["base"], p["run"], p["seed"], results))
        runs.append(Run(p["suite"], p["base"], p["run"], p["seed"], p["split"], d,
                        ckpt if p["run"] != BASE_RUN else None))
    if not runs:
        raise DataError(f"{root}: no evaluation results ({EVAL_GLOB}) found")
    return runs


def long_rows(runs: list[Run], experiment: str) -> list[dict]:
    rows = []
    for r in runs:
        m = r.metrics
        ckpt_md5 = md5_file(r.checkpoint / "orchmoe_adapter.safetensors") if r.checkpoint else ""
        trainable, base_params = r.trainable_params(), r.base_params()
        for metric, value in m["mean"].items():
            rows.append({"experiment": experiment, "suite": r.suite, "split": r.split, "base": r.base, "run": r.run,
                         "method": r.method, "entry": r.entry, "domain": r.domain or "", "seed": r.seed,
                         "metric": metric, "value": value, "n_examples": m.get("n"),
                         "trainable_params": trainable, "base_params": base_params,
                         "adapter_to_base_pct": round(100 * trainable / base_params, 4) if base_params else None,
                         "metrics_file": str(r.eval_dir / "metrics.json"),
                         "metrics_md5": md5_file(r.eval_dir / "metrics.json"),
                         "checkpoint": str(r.checkpoint or ""), "checkpoint_md5": ckpt_md5})
    return rows


def task_vectors(run, tasks: list[str]) -> tuple[list[str], np.ndarray] | None:
    """One row per task: its learned skill weights over all routers (Figure 3's input).

    Per-example routing from predictions.jsonl ("skill_weights", averaged per task) covers every routed method
    without task ids; Poly/MHR fall back to their task-indexed allocation rows in routing.json."""
    by_task = defaultdict(list)
    for row in read_jsonl(run.eval_dir / "predictions.jsonl"):
        if row.get("skill_weights"):
            by_task[row["task"]].append(np.ravel(row["skill_weights"]))
    if by_task:
        names = [t for t in tasks if t in by_task]
        return names, np.array([np.mean(by_task[t], axis=0) for t in names])
    routing = run.checkpoint / "routing.json"
    alloc = json.loads(routing.read_text()).get("allocation", {}) if routing.is_file() else {}
    mats = [np.asarray(alloc[k]) for k in sorted(alloc)]
    mats = [m.reshape(len(tasks), -1) for m in mats if m.size and m.shape[0] == len(tasks)]
    return (tasks, np.concatenate(mats, axis=1)) if mats else None
