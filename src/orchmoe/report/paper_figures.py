"""The papers' figure layouts, from the config's `report.figures` (PNG + PDF, and the plotted numbers as CSV).

score_vs_params  OrchMoE Figure 2: RougeLsum (mean over seeds) vs trainable parameters (log x), one line per method
                 across its rank sweep, one panel per base of one suite.
allocation       OrchMoE Figure 3: one chosen run's task dendrogram (average linkage on each task's learned skill
                 weights) beside the allocation heatmap, rows in dendrogram order, with a colour bar. Sized by the
                 number of tasks so 100 tasks stay readable.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.cluster.hierarchy import dendrogram, linkage  # noqa: E402

from orchmoe.errors import ConfigError, DataError  # noqa: E402
from orchmoe.io import write_text  # noqa: E402

from .collect import collect_runs, task_vectors  # noqa: E402
from .paper_tables import Results  # noqa: E402
from .plotting import _save  # noqa: E402


def score_vs_params(res: Results, name: str, spec: dict, out: Path, metric: str = "rougeLsum") -> pd.DataFrame:
    for key in ("suite", "bases", "lines"):
        if key not in spec:
            raise ConfigError(f"config report.figures.{name}: layout 'score_vs_params' needs key {key!r}")
    suite, bases = spec["suite"], spec["bases"]
    rows = []
    for base in bases:
        for line, entries in spec["lines"].items():
            for run in res.runs_of(suite, base, entries):
                seeds = res.get(suite, base, run, "eval")
                first = seeds[min(seeds)]
                rows.append({"base": base, "line": line, "run": run, "trainable_params": first.trainable_params(),
                             "rank": first.train_run["config"]["adapter"].get("rank"),
                             metric: float(np.mean([r.metrics["mean"][metric] for r in seeds.values()])),
                             "n_seeds": len(seeds)})
    df = pd.DataFrame(rows, columns=["base", "line", "run", "trainable_params", "rank", metric, "n_seeds"])
    fig, axes = plt.subplots(1, len(bases), figsize=(6 * len(bases), 4.2), squeeze=False)
    for ax, base in zip(axes[0], bases):
        for line in spec["lines"]:
            pts = df[(df.base == base) & (df.line == line)].sort_values("trainable_params")
            if len(pts):
                ax.plot(pts.trainable_params, pts[metric], marker="o", label=line)
        ax.set_xscale("log")
        ax.set(title=f"{suite} / {base}", xlabel="trainable parameters", ylabel="RougeLsum")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(spec["caption"], fontsize=9)
    _save(fig, out, name)
    write_text(out / f"{name}.csv", df.to_csv(index=False))
    return df


def allocation(res: Results, name: str, spec: dict, out: Path, data_root: Path) -> pd.DataFrame:
    for key in ("suite", "base", "run"):
        if key not in spec:
            raise ConfigError(f"config report.figures.{name}: layout 'allocation' needs key {key!r}")
    suite, base, run = spec["suite"], spec["base"], spec["run"]
    seeds = res.get(suite, base, run, "eval")
    if not seeds:
        raise DataError(f"report.figures.{name}: no evaluation of run {run!r} on {suite}/{base}")
    chosen = seeds[spec.get("seed", min(seeds))] if spec.get("seed", min(seeds)) in seeds else None
    if chosen is None:
        raise ConfigError(f"config report.figures.{name}.seed: {spec['seed']} not among the seeds {sorted(seeds)}")
    manifest = json.loads((data_root / suite / "manifest.json").read_text())
    tv = task_vectors(chosen, manifest["tasks"])
    if tv is None or len(tv[0]) < 2:
        raise DataError(f"{chosen.eval_dir}: run {run!r} has no task-level routing to draw (skill_weights)")
    tasks, vectors = tv
    Z = linkage(vectors, method="average", metric="euclidean")
    n = len(tasks)
    height = max(4.0, 0.14 * n + 1.5)  # about 10 px per task row at 120 dpi: 100 task labels stay legible
    fig = plt.figure(figsize=(11, height))
    grid = fig.add_gridspec(1, 3, width_ratios=[1.2, 4, 0.15], wspace=0.02)
    ax_d, ax_h, ax_c = (fig.add_subplot(grid[0, i]) for i in range(3))
    short = [t.split("_", 1)[1] if "_" in t else t for t in tasks]
    dn = dendrogram(Z, orientation="left", ax=ax_d, no_labels=True, color_threshold=0.7 * Z[:, 2].max())
    order = dn["leaves"]  # bottom to top, as drawn
    ax_d.axis("off")
    mat = vectors[order]
    im = ax_h.imshow(mat, aspect="auto", cmap="viridis", origin="lower", interpolation="nearest")
    ax_h.set_yticks(range(n))
    ax_h.set_yticklabels([short[i] for i in order], fontsize=max(4, min(8, 600 / max(n, 1) / 1.2)))
    ax_h.yaxis.tick_right()
    ax_h.set_xlabel("block router x skill (allocation weight)")
    fig.colorbar(im, cax=ax_c, label="skill weight")
    fig.suptitle(f"{spec['caption']}\n{suite} / {base} / {run} / seed {chosen.seed}", fontsize=9)
    _save(fig, out, name)
    df = pd.DataFrame({"order": range(n), "task": [tasks[i] for i in order]})
    write_text(out / f"{name}.csv", df.to_csv(index=False))
    return df


def build_paper_figures(results, experiment: str, spec: dict, data_root, out_dir) -> list[str]:
    res = Results(collect_runs(Path(results), experiment))
    out = Path(out_dir)
    written = []
    for name, fig in spec.items():
        layout = fig.get("layout")
        if layout == "score_vs_params":
            score_vs_params(res, name, fig, out)
        elif layout == "allocation":
            allocation(res, name, fig, out, Path(data_root))
        else:
            raise ConfigError(f"config report.figures.{name}.layout: {layout!r} is not a figure layout "
                              "['allocation', 'score_vs_params']")
        written.append(name)
    return written
