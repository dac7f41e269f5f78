"""Report commands: `orchmoe tables`, `orchmoe figures`, `orchmoe trace`."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("tables", help="build result tables (CSV, Markdown, LaTeX) from evaluation results")
    p.add_argument("--experiment", required=True)
    p.add_argument("--results", default="results")
    p.add_argument("--out", required=True)
    p.set_defaults(func=lambda a: _tables(a))

    p = sub.add_parser("figures", help="training curves, score vs parameters, task clustering (PNG + PDF)")
    p.add_argument("--experiment", required=True)
    p.add_argument("--results", default="results")
    p.add_argument("--data", required=True, help="the suite folder (manifest.json)")
    p.add_argument("--skills", help="built-in suite skills.json: ground truth for the clustering score")
    p.add_argument("--out", required=True)
    p.set_defaults(func=lambda a: _figures(a))

    p = sub.add_parser("trace", help="print the chain behind one table cell")
    p.add_argument("--tables", required=True, help="table folder holding metrics_long.csv")
    p.add_argument("--base", required=True)
    p.add_argument("--method", required=True)
    p.add_argument("--metric", default="rougeLsum")
    p.add_argument("--seed", type=int)
    p.add_argument("--dvc-lock", default="dvc.lock")
    p.set_defaults(func=lambda a: _trace(a))


def _tables(a):
    from .tables import build_tables

    build_tables(a.results, a.experiment, a.out)
    print((__import__("pathlib").Path(a.out) / "main.md").read_text())


def _figures(a):
    from .figures import build_figures

    build_figures(a.results, a.experiment, a.data, a.out, a.skills)
    print(f"figures in {a.out}")


def _trace(a):
    from .trace import trace

    print("\n".join(trace(a.tables, a.base, a.method, a.metric, a.seed, a.dvc_lock)))
