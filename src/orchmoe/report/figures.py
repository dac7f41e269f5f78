"""Figures: training curves, score vs trainable parameters (OrchMoE Figure 2), and task clustering from the
learned task-skill allocation (OrchMoE Figure 3: dendrogram + heatmap), scored against the built-in suite's
ground truth with the adjusted Rand index."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from scipy.cluster.hierarchy import dendrogram, fcluster, linkage  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

from orchmoe.io import atomic_path, read_jsonl, write_text  # noqa: E402

from .collect import collect_runs  # noqa: E402
from .tables import LABELS  # noqa: E402

ROUTED = ("orchmoe", "poly", "mhr")


def _save(fig, out: Path, name: str) -> None:
    for ext in ("png", "pdf"):
        with atomic_path(out / f"{name}.{ext}") as tmp:
            fig.savefig(tmp, format=ext, dpi=130, bbox_inches="tight")
    plt.close(fig)


def training_curves(runs, out: Path) -> None:
    bases = sorted({r.base for r in runs})
    fig, axes = plt.subplots(1, len(bases), figsize=(5 * len(bases), 3.5), squeeze=False)
    for ax, base in zip(axes[0], bases):
        for r in runs:
            if r.base == base and r.checkpoint is not None and r.seed == min(x.seed for x in runs):
                log = pd.read_csv(r.checkpoint / "train_log.csv")
                ax.plot(log["step"], log["lm_loss"], label=LABELS.get(r.method, r.method))
        ax.set(title=base, xlabel="step", ylabel="LM loss")
        ax.legend(fontsize=7)
    _save(fig, out, "training_curves")


def score_vs_params(runs, out: Path) -> None:
    rows = [{"base": r.base, "method": LABELS.get(r.method, r.method), "params": r.trainable_params(),
             "rougeLsum": r.metrics["mean"]["rougeLsum"]} for r in runs if r.checkpoint is not None]
    df = pd.DataFrame(rows).groupby(["base", "method"], as_index=False).mean()
    g = sns.relplot(data=df, x="params", y="rougeLsum", hue="method", col="base", kind="scatter", s=80,
                    height=3.5, facet_kws={"sharex": False})
    g.set_axis_labels("trainable parameters", "RougeLsum")
    _save(g.figure, out, "score_vs_params")


def task_vectors(run, manifest: dict) -> tuple[list[str], np.ndarray] | None:
    """One row per real task: its skill weights in every layer (Figure 3's input)."""
    if run.method == "orchmoe":  # average each task's per-example skill weights (no task ids needed)
        by_task = defaultdict(list)
        for row in read_jsonl(run.eval_dir / "predictions.jsonl"):
            if "skill_weights" in row:
                by_task[row["task"]].append(row["skill_weights"])
        tasks = [t for t in manifest["tasks"] if t in by_task]
        return tasks, np.array([np.mean(by_task[t], axis=0) for t in tasks])
    if run.method in ("poly", "mhr"):  # the learned allocation rows are indexed by task id
        alloc = json.loads((run.checkpoint / "routing.json").read_text())["allocation"]
        mats = [np.asarray(alloc[k]).reshape(len(manifest["tasks"]), -1) for k in sorted(alloc)]
        return manifest["tasks"], np.concatenate(mats, axis=1)
    return None


def task_clustering(runs, manifest: dict, skills: dict | None, out: Path) -> pd.DataFrame:
    routed = [r for r in runs if r.method in ROUTED and r.seed == min(x.seed for x in runs)]
    fig, axes = plt.subplots(2, max(len(routed), 1), figsize=(4.5 * max(len(routed), 1), 9), squeeze=False)
    rows = []
    truth = skills.get("domains") if skills else None
    for col, r in enumerate(routed):
        tasks, vectors = task_vectors(r, manifest)
        Z = linkage(vectors, method="average", metric="euclidean")
        short = [t.split("_", 1)[1] if "_" in t else t for t in tasks]
        dendrogram(Z, labels=short, orientation="right", ax=axes[0, col], leaf_font_size=6)
        axes[0, col].set_title(f"{r.base} / {LABELS[r.method]}")
        sns.heatmap(vectors, ax=axes[1, col], cmap="viridis", yticklabels=short, cbar=False)
        axes[1, col].tick_params(labelsize=5)
        axes[1, col].set_xlabel("layer x skill")
        row = {"base": r.base, "method": r.method, "n_tasks": len(tasks)}
        if truth:
            labels = [truth[t] for t in tasks]
            k = len(set(labels))
            row["adjusted_rand_index"] = round(float(adjusted_rand_score(labels, fcluster(Z, k, "maxclust"))), 4)
            row["ground_truth"] = "first skill applied (built-in suite domains)"
        rows.append(row)
    _save(fig, out, "task_clustering")
    df = pd.DataFrame(rows)
    write_text(out / "task_clustering.csv", df.to_csv(index=False))
    return df


def build_figures(results, experiment: str, suite_dir, out_dir, skills_file=None) -> None:
    runs = collect_runs(Path(results), experiment)
    out = Path(out_dir)
    manifest = json.loads((Path(suite_dir) / "manifest.json").read_text())
    skills = json.loads(Path(skills_file).read_text()) if skills_file else None
    training_curves(runs, out)
    score_vs_params(runs, out)
    task_clustering(runs, manifest, skills, out)
