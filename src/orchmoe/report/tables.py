"""Result tables (CSV + Markdown + LaTeX, one wide shape; LaTeX with caption and label), built from the long table
(metrics_long.csv: one row per seed and metric); never typed by hand.

main:   the papers' main-results layout (OrchMoE Tables 1-3, MoA Tables 2-3): one block per suite x split, one row
        per run (the "Base model (no adapter)" floor first, then the papers' method order: LoRA, MoE-LoRA, Poly, MHR,
        OrchMoE, MoA), per base model EM / RougeL / RougeLsum as mean ± sd over seeds, with the number of seeds.
params: OrchMoE Table 4 / MoA Table 4 layout: trainable parameters and the adapter-to-base ratio per run, same order.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from orchmoe.io import write_json, write_text
from orchmoe.paths import parse_run

from .collect import SCORES, collect_runs, long_rows

BASE_LABEL = "Base model (no adapter)"


def labels() -> dict:
    """Display names in table order: the floor, then the registered methods (adapters/registry.py)."""
    from orchmoe.adapters.registry import specs

    return {"base": BASE_LABEL, **{s.name: s.label for s in specs()}}


def routed() -> tuple[str, ...]:
    """Methods that learn a routing worth plotting and scoring (`routed=True` in their registry entry)."""
    from orchmoe.adapters.registry import specs

    return tuple(s.name for s in specs() if s.routed)


def __getattr__(name):
    if name == "LABELS":
        return labels()
    raise AttributeError(name)


METRIC_LABELS = {"exact_match": "EM", "rougeL": "RougeL", "rougeLsum": "RougeLsum"}


def label(run: str, method: str) -> str:
    """Display name: the method's paper name, plus the run's sweep point / domain when it has one."""
    name = labels().get(method, method)
    entry, rest, domain = parse_run(run)
    extra = [] if entry == method else [entry]
    extra += [rest] if rest else []
    extra += [f"domain {domain}"] if domain else []
    return name + (f" ({', '.join(extra)})" if extra else "")


def _markdown(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def write_csv_md(out: Path, name: str, table: pd.DataFrame, caption: str, empty: str = "(no runs)") -> None:
    """<name>.csv (the numbers) and <name>.md (caption + markdown table, or `empty`), each written atomically."""
    write_text(out / f"{name}.csv", table.to_csv(index=False))
    write_text(out / f"{name}.md", caption + "\n\n" + (_markdown(table) if len(table) else empty) + "\n")


def _latex(df: pd.DataFrame, caption: str, label: str) -> str:
    esc = lambda s: (str(s).replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%")  # noqa: E731
                     .replace("&", r"\&").replace("#", r"\#").replace("`", "").replace("±", r"$\pm$"))
    rows = [" & ".join(esc(v) for v in row) + r" \\" for row in df.itertuples(index=False)]
    return "\n".join([r"\begin{table}[t]", r"\centering", r"\caption{" + esc(caption) + "}", r"\label{" + label + "}",
                      r"\begin{tabular}{l" + "r" * (len(df.columns) - 1) + "}", r"\toprule",
                      " & ".join(esc(c) for c in df.columns) + r" \\", r"\midrule", *rows, r"\bottomrule",
                      r"\end{tabular}", r"\end{table}"]) + "\n"


def _write(out: Path, name: str, wide: pd.DataFrame, caption: str, label: str | None = None) -> None:
    """One table in three formats, all the same wide shape; the long form is metrics_long.csv."""
    write_text(out / f"{name}.csv", wide.to_csv(index=False))
    write_text(out / f"{name}.md", caption + "\n\n" + _markdown(wide) + "\n")
    write_text(out / f"{name}.tex", _latex(wide, caption, label or f"tab:{name}"))


def aggregate(long: pd.DataFrame) -> pd.DataFrame:
    scores = long[long.metric.isin(SCORES + ("router_accuracy",))]
    agg = (scores.groupby(["suite", "split", "base", "run", "method", "metric"], sort=False)
           .agg(mean=("value", "mean"), sd=("value", "std"), n_seeds=("seed", "nunique"),
                trainable_params=("trainable_params", "first"), base_params=("base_params", "first"),
                adapter_to_base_pct=("adapter_to_base_pct", "first")).reset_index())
    agg["sd"] = agg["sd"].fillna(0.0)
    return agg


def _order(block: pd.DataFrame) -> list[str]:
    """Runs in labels() order (the floor, then the registry's method order; unknown last), by name within one."""
    rank = {m: i for i, m in enumerate(labels())}
    method = dict(zip(block.run, block.method))
    return sorted(method, key=lambda run: (rank.get(method[run], len(rank)), run))


def _mean_sd(cell: pd.DataFrame) -> str:
    """One seed has no sd: "—" rather than a misleading "± 0.00"."""
    sd = f"{cell['sd'].iloc[0]:.2f}" if cell["n_seeds"].iloc[0] > 1 else "—"
    return f"{cell['mean'].iloc[0]:.2f} ± {sd}"


def main_table(agg: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (suite, split), block in agg.groupby(["suite", "split"], sort=True):
        for run in _order(block):
            sel = block[block.run == run]
            row = {"Suite": suite, "Split": split, "Method": label(run, sel.method.iloc[0])}
            for base in sorted(block.base.unique()):
                for metric in SCORES:
                    cell = sel[(sel.base == base) & (sel.metric == metric)]
                    row[f"{base} {METRIC_LABELS[metric]}"] = (
                        _mean_sd(cell) if len(cell) else "–")
            row["Seeds"] = int(sel.n_seeds.max())
            rows.append(row)
    return pd.DataFrame(rows)


def params_table(agg: pd.DataFrame) -> pd.DataFrame:
    rank = {run: i for i, run in enumerate(_order(agg))}
    first = agg.drop_duplicates(["base", "run"])
    first = first[first.run != "base"]
    first = first.assign(order=first.run.map(rank)).sort_values(["base", "order"])
    return pd.DataFrame({"Base": first.base, "Method": [label(r, m) for r, m in zip(first.run, first.method)],
                         "Trainable params": first.trainable_params.map("{:,}".format),
                         "Base params": first.base_params.map(lambda v: f"{int(v):,}" if pd.notna(v) else "–"),
                         "Adapter / base (%)": first.adapter_to_base_pct.map(
                             lambda v: f"{v:.3f}" if pd.notna(v) else "–")})


def build_tables(results, experiment: str, out_dir) -> pd.DataFrame:
    runs = collect_runs(Path(results), experiment)
    long = pd.DataFrame(long_rows(runs, experiment))
    out = Path(out_dir)
    write_text(out / "metrics_long.csv", long.to_csv(index=False))
    agg = aggregate(long)
    n_seeds = int(agg.n_seeds.max())
    src = Path(results) / "eval" / experiment
    cap = (f"Experiment {experiment}: mean ± sd over {n_seeds} seed(s); EM / ROUGE-L x100 (Super-NI metric "
           f"definitions) on each split. Generated by `orchmoe tables` from {src}.")
    _write(out, "main", main_table(agg), cap, f"tab:{experiment}-main")
    cap = f"Experiment {experiment}: trainable parameters and adapter-to-base ratio. Generated by `orchmoe tables`."
    _write(out, "params", params_table(agg), cap, f"tab:{experiment}-params")
    # dvc metrics: one number per suite/split/base/run/metric (mean over seeds)
    summary: dict = {}
    for r in agg.itertuples():
        summary.setdefault(f"{r.suite}/{r.split}", {}).setdefault(r.base, {}).setdefault(r.run, {})[r.metric] = round(
            float(r.mean), 4)
    write_json(out / "summary.json", summary)
    from .study import study_table

    study_table(runs, out)  # seen vs held-out, differences to LoRA with paired bootstrap CIs (report/study.py)
    return agg


def floor_gaps(agg: pd.DataFrame, metric: str = "rougeLsum") -> dict:
    """run -> score minus the no-adapter floor, per suite/split/base (the demo's 'every method learns' check)."""
    gaps = {}
    sel = agg[agg.metric == metric]
    for (suite, split, base), block in sel.groupby(["suite", "split", "base"]):
        floor = block[block.run == "base"]["mean"]
        if floor.empty:
            continue
        for r in block[block.run != "base"].itertuples():
            gaps[f"{suite}/{split}/{base}/{r.run}"] = round(float(r.mean - floor.iloc[0]), 2)
    return gaps
