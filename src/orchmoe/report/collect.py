"""Find the workflow's result files: results/{eval,checkpoints}/<experiment>/<base>/<method>/seed<seed>/."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from safetensors import safe_open

from orchmoe.errors import DataError
from orchmoe.io import md5_file

SCORES = ("exact_match", "rouge1", "rougeL", "rougeLsum")


@dataclass
class Run:
    base: str
    method: str
    seed: int
    eval_dir: Path
    checkpoint: Path | None

    @property
    def metrics(self) -> dict:
        return json.loads((self.eval_dir / "metrics.json").read_text())

    def trainable_params(self) -> int:
        if self.checkpoint is None:
            return 0
        with safe_open(str(self.checkpoint / "adapter_model.safetensors"), "pt") as f:
            return sum(_numel(f.get_slice(k).get_shape()) for k in f.keys())


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def collect_runs(results: Path, experiment: str) -> list[Run]:
    root = Path(results) / "eval" / experiment
    runs = []
    for metrics in sorted(root.glob("*/*/seed*/metrics.json")):
        d = metrics.parent
        base, method, seed = d.parent.parent.name, d.parent.name, int(d.name.removeprefix("seed"))
        ckpt = Path(results) / "checkpoints" / experiment / base / method / d.name
        runs.append(Run(base, method, seed, d, ckpt if method != "base" else None))
    if not runs:
        raise DataError(f"{root}: no evaluation results (metrics.json) found")
    return runs


def long_rows(runs: list[Run], experiment: str) -> list[dict]:
    rows = []
    for r in runs:
        m = r.metrics
        ckpt_md5 = md5_file(r.checkpoint / "adapter_model.safetensors") if r.checkpoint else ""
        for metric, value in m["mean"].items():
            rows.append({"experiment": experiment, "base": r.base, "method": r.method, "seed": r.seed,
                         "metric": metric, "value": value, "n_examples": m.get("n"),
                         "trainable_params": r.trainable_params(),
                         "metrics_file": str(r.eval_dir / "metrics.json"),
                         "metrics_md5": md5_file(r.eval_dir / "metrics.json"),
                         "checkpoint": str(r.checkpoint or ""), "checkpoint_md5": ckpt_md5})
    return rows
