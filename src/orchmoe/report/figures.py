"""Figures (PNG + PDF): training curves; score vs trainable parameters (OrchMoE Figure 2); task clustering from
the learned task-skill allocation (OrchMoE Figure 3: dendrogram + heatmap), scored on the built-in suite with the
adjusted Rand index against its ground-truth task -> skills map; MoA router accuracy bars."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from scipy.cluster.hierarchy import dendrogram, fcluster, linkage  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

from .collect import collect_runs, task_vectors  # noqa: E402
from .plotting import _save  # noqa: E402
from .tables import label, routed, write_csv_md  # noqa: E402


def __getattr__(name):
    if name == "ROUTED":
        return routed()
    raise AttributeError(name)


def _first_seed(runs):
    seed = min(r.seed for r in runs)
    return [r for r in runs if r.seed == seed and r.split == "eval"]


def training_curves(runs, out: Path) -> None:
    trained = [r for r in _first_seed(runs) if r.checkpoint is not None and r.domain is None]
    panels = sorted({(r.suite, r.base) for r in trained}) or [("", "")]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False)
    for ax, (suite, base) in zip(axes[0], panels):
        for r in trained:
            if (r.suite, r.base) == (suite, base):
                log = pd.read_csv(r.checkpoint / "train_log.csv")
                ax.plot(log["step"], log["lm_loss"], label=label(r.run, r.method))
        ax.set(title=f"{suite} / {base}", xlabel="step", ylabel="LM loss")
        ax.legend(fontsize=6)
    _save(fig, out, "training_curves")


def score_vs_params(runs, out: Path, metric: str = "rougeLsum") -> None:
    rows = [{"base": r.base, "suite": r.suite, "method": label(r.run, r.method), "params": r.trainable_params(),
             metric: r.metrics["mean"][metric]} for r in runs
            if r.checkpoint is not None and r.split == "eval" and r.domain is None]
    fig, ax = plt.subplots(figsize=(6, 4))
    if rows:
        df = pd.DataFrame(rows).groupby(["base", "suite", "method"], as_index=False).mean(numeric_only=True)
        sns.scatterplot(data=df, x="params", y=metric, hue="method", style="base", s=70, ax=ax)
        ax.set_xscale("log")
        ax.legend(fontsize=6, bbox_to_anchor=(1.02, 1), loc="upper left")
    ax.set(xlabel="trainable parameters", ylabel="RougeLsum")
    _save(fig, out, "score_vs_params")


def task_clustering(runs, manifest: dict, skills: dict | None, out: Path) -> pd.DataFrame:
    picked, routed_methods = [], routed()
    for r in _first_seed(runs):
        if r.method in routed_methods and r.domain is None:
            tv = task_vectors(r, manifest["tasks"])
            if tv is not None and len(tv[0]) > 2:
                picked.append((r, *tv))
    ncol = max(len(picked), 1)
    fig, axes = plt.subplots(2, ncol, figsize=(4.5 * ncol, 9), squeeze=False)
    truth = skills.get("domains") if skills else None
    rows = []
    for col, (r, tasks, vectors) in enumerate(picked):
        Z = linkage(vectors, method="average", metric="euclidean")
        short = [t.split("_", 1)[1] if "_" in t else t for t in tasks]
        dendrogram(Z, labels=short, orientation="right", ax=axes[0, col], leaf_font_size=6)
        axes[0, col].set_title(f"{r.base} / {label(r.run, r.method)}", fontsize=8)
        sns.heatmap(vectors, ax=axes[1, col], cmap="viridis", yticklabels=short, cbar=False)
        axes[1, col].tick_params(labelsize=5)
        axes[1, col].set_xlabel("router x skill")
        row = {"suite": r.suite, "base": r.base, "run": r.run, "method": r.method, "n_tasks": len(tasks)}
        if skills and skills.get("skills"):  # the full skill sets (metrics/skill_recovery.py)
            from orchmoe.metrics.skill_recovery import skill_recovery

            rec = skill_recovery(tasks, vectors, skills["skills"])
            row.update(adjusted_rand_index=round(rec["ari"], 4), spearman=round(rec["spearman"], 4),
                       n_clusters=rec["n_clusters"], ground_truth="each task's skill set (skills.json skills)")
        elif truth:
            labels = [truth[t] for t in tasks]
            k = len(set(labels))
            row["adjusted_rand_index"] = round(float(adjusted_rand_score(labels, fcluster(Z, k, "maxclust"))), 4)
            row["n_clusters"] = k
            row["ground_truth"] = "first skill of each task (skills.json domains)"
        rows.append(row)
    if not picked:
        axes[0, 0].text(0.5, 0.5, "no routed method with task-level routing", ha="center")
    _save(fig, out, "task_clustering")
    df = pd.DataFrame(rows)
    write_csv_md(out, "task_clustering", df, "Task clustering from learned task-skill allocations vs ground truth "
                 "(adjusted Rand index, 0 = chance, 1 = perfect; Spearman of routing similarity vs skill overlap, "
                 "metrics/skill_recovery.py), first seed. Generated by `orchmoe figures`.", empty="(no routed runs)")
    return df


def router_accuracy(runs, out: Path) -> None:
    rows = [{"base": r.base, "method": label(r.run, r.method), "suite": r.suite,
             "router_accuracy": r.metrics["mean"]["router_accuracy"]}
            for r in runs if r.split == "eval" and "router_accuracy" in r.metrics["mean"]]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if rows:
        sns.barplot(data=pd.DataFrame(rows), x="method", y="router_accuracy", hue="base", ax=ax, errorbar="sd")
        ax.set_ylim(0, 100 if max(r["router_accuracy"] for r in rows) > 1 else 1)
    else:
        ax.text(0.5, 0.5, "no run reports router accuracy", ha="center", transform=ax.transAxes)
    ax.set(title="MoA router accuracy (domain prediction)", xlabel="")
    _save(fig, out, "router_accuracy")


def build_figures(results, experiment: str, suite_dir, out_dir, skills_file=None) -> None:
    runs = collect_runs(Path(results), experiment)
    out = Path(out_dir)
    manifest = json.loads((Path(suite_dir) / "manifest.json").read_text())
    skills = json.loads(Path(skills_file).read_text()) if skills_file else None
    training_curves(runs, out)
    score_vs_params(runs, out)
    task_clustering([r for r in runs if r.suite == Path(suite_dir).name], manifest, skills, out)
    router_accuracy(runs, out)
    from .study import router_diagnostics, routing_summary, skill_recovery_table

    diagnostics = router_diagnostics(runs, out)
    if skills and skills.get("skills"):
        suite_runs = [r for r in runs if r.suite == Path(suite_dir).name]
        recovery = skill_recovery_table(suite_runs, manifest, skills["skills"], out)
        routing_summary(suite_runs, recovery, diagnostics, out)
