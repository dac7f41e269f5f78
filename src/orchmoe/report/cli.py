"""Report commands: `orchmoe tables`, `orchmoe figures`, `orchmoe trace`."""
from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("tables", help="build result tables (CSV, Markdown, LaTeX) from evaluation results")
    p.add_argument("--experiment", required=True)
    p.add_argument("--results", default="results")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_tables)

    p = sub.add_parser("figures", help="training curves, score vs parameters, task clustering, router accuracy")
    p.add_argument("--experiment", required=True)
    p.add_argument("--results", default="results")
    p.add_argument("--data", required=True, help="the suite folder whose tasks are clustered (manifest.json)")
    p.add_argument("--skills", help="built-in suite skills.json: ground truth for the clustering score")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_figures)

    p = sub.add_parser("paper-tables", help="the papers' table layouts (config report.tables) from evaluation results")
    p.add_argument("--experiment", required=True)
    p.add_argument("--results", default="results")
    p.add_argument("--spec", required=True, help="JSON object: the config's report.tables")
    p.add_argument("--params", help="`orchmoe params --out` CSV (ratios / the papers' values)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_paper_tables)

    p = sub.add_parser("paper-figures", help="the papers' figure layouts (config report.figures)")
    p.add_argument("--experiment", required=True)
    p.add_argument("--results", default="results")
    p.add_argument("--data", required=True, help="folder holding the experiment's suites (data/processed/<exp>)")
    p.add_argument("--spec", required=True, help="JSON object: the config's report.figures")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_paper_figures)

    p = sub.add_parser("trace", help="print the chain behind one table cell (from run JSONs and dvc.lock)")
    p.add_argument("--tables", required=True, help="table folder holding metrics_long.csv")
    p.add_argument("--base", required=True)
    p.add_argument("--run", "--method", dest="run", required=True, help="run name (a method entry), or 'base'")
    p.add_argument("--metric", default="rougeLsum")
    p.add_argument("--suite")
    p.add_argument("--split", default="eval")
    p.add_argument("--seed", type=int)
    p.add_argument("--dvc-lock", default="dvc.lock")
    p.add_argument("--verify", action="store_true",
                   help="check the cell against its metrics files and every file behind it against its recorded md5; "
                        "exit 1 naming the first that differs")
    p.set_defaults(func=_trace)


def _tables(a):
    from .tables import build_tables, floor_gaps

    agg = build_tables(a.results, a.experiment, a.out)
    print((Path(a.out) / "main.md").read_text())
    print("RougeLsum minus the no-adapter floor:", floor_gaps(agg))


def _figures(a):
    from .figures import build_figures

    build_figures(a.results, a.experiment, a.data, a.out, a.skills)
    print(f"figures in {a.out}")


def _spec(text: str) -> dict:
    import json

    from orchmoe.errors import ConfigError

    try:
        spec = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"--spec: not a JSON object ({e})") from None
    if not isinstance(spec, dict):
        raise ConfigError("--spec: not a JSON object")
    return spec


def _paper_tables(a):
    from .paper_tables import build_paper_tables

    for name in build_paper_tables(a.results, a.experiment, _spec(a.spec), a.out, a.params):
        print((Path(a.out) / f"{name}.md").read_text())


def _paper_figures(a):
    from .paper_figures import build_paper_figures

    names = build_paper_figures(a.results, a.experiment, _spec(a.spec), a.data, a.out)
    print(f"figures {', '.join(names)} in {a.out}")


def _trace(a):
    from orchmoe.errors import OrchmoeError

    from .trace import trace, verify

    ok, verdict = verify(a.tables, a.base, a.run, a.metric, a.seed, a.suite, a.split) if a.verify else (True, None)
    try:
        print("\n".join(trace(a.tables, a.base, a.run, a.metric, a.seed, a.dvc_lock, a.suite, a.split)))
    except (OrchmoeError, OSError, KeyError):
        if ok:
            raise
        # the link the verdict names (a missing or edited run.json) also breaks the printed chain: the verdict says why
    if verdict:
        print(verdict)
    return 0 if ok else 1
