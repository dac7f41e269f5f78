"""The papers' own table layouts, from the config's `report.tables` (CSV + Markdown + LaTeX via tables._write, all
in the table's wide shape; every number also as one row of `long.csv`, with its table, run, split, metric, seeds).

OrchMoE (seed 000):
  methods  Tables 1-3: a row group per base, a row per method, a column group per suite/split with
           Rouge1 / RougeL / RougeLsum (mean ± sd over seeds).
  sweep    Table 4: a row per value of an adapter field (abstract tasks T, numeric order, largest first as in the
           paper), the adapter-to-base ratio, then the metrics of each split (seen / unseen tasks).
MoA (slides, seed 003):
  domains          Tables 2 and 8: a row per domain + Average, a column group per method with PPL / BLEU / ROUGE-L.
                   A per-domain entry (Single-LoRA) contributes its own domain's run: the diagonal.
  domain_accuracy  Table 3: per domain the test size, the plain classifier's and the MoA router's accuracy.
  params           Table 4: trainable parameters per method (MoA as n x per-LoRA + router).
  average          Table 7: per method the average over domains of PPL / BLEU / ROUGE-L.
Per-domain numbers are recomputed from predictions.jsonl with the same code as metrics.json
(`metrics_from_predictions`), restricted to one domain; averages are the mean over domains, as in the slides.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from orchmoe.errors import ConfigError, DataError
from orchmoe.io import read_jsonl, write_text

from .collect import collect_runs
from .tables import _write, routed

METRIC_LABELS = {"rouge1": "Rouge1", "rougeL": "RougeL", "rougeLsum": "RougeLsum", "exact_match": "EM",
                 "perplexity": "PPL", "bleu": "BLEU"}
ORCHMOE_METRICS = ["rouge1", "rougeL", "rougeLsum"]  # OrchMoE Tables 1-4
MISSING = "–"


def _cell(values, digits: int = 2) -> str:
    if not len(values):
        return MISSING
    v = np.asarray(values, dtype=float)
    sd = v.std(ddof=1) if len(v) > 1 else 0.0
    return f"{v.mean():.{digits}f} ± {sd:.{digits}f}"


class Results:
    """Evaluation results indexed by (suite, base, run, split) -> {seed: Run}."""

    def __init__(self, runs):
        self.by_key = defaultdict(dict)
        for r in runs:
            self.by_key[(r.suite, r.base, r.run, r.split)][r.seed] = r
        self._preds = {}

    def get(self, suite, base, run, split) -> dict:
        return self.by_key.get((suite, base, run, split), {})

    def runs_of(self, suite, base, entries, split="eval") -> list[str]:
        """Run names of these method entries (all sweep points) on suite/base."""
        return sorted({r for (s, b, r, sp) in self.by_key if s == suite and b == base and sp == split
                       and r.split("@")[0].split("-")[0] in entries})

    def metric(self, suite, base, run, split, metric) -> list[float]:
        return [r.metrics["mean"][metric] for _, r in sorted(self.get(suite, base, run, split).items())
                if metric in r.metrics["mean"]]

    def predictions(self, run) -> list[dict]:
        key = str(run.eval_dir)
        if key not in self._preds:
            self._preds[key] = read_jsonl(run.eval_dir / "predictions.jsonl")
        return self._preds[key]


def _need(spec: dict, name: str, *keys):
    for k in keys:
        if k not in spec:
            raise ConfigError(f"config report.tables.{name}: layout {spec.get('layout')!r} needs key {k!r}")


def methods_table(res: Results, name: str, spec: dict):
    """OrchMoE Tables 1-3."""
    _need(spec, name, "bases", "runs", "columns")
    metrics = spec.get("metrics", ORCHMOE_METRICS)
    long, wide = [], []
    for base in spec["bases"]:
        for i, (run, label) in enumerate(spec["runs"].items()):
            row = {"Base Model": base if i == 0 else "", "PEFT Type": label}
            for col in spec["columns"]:
                for m in metrics:
                    vals = res.metric(col["suite"], base, run, col["split"], m)
                    row[f"{col.get('title', col['suite'] + ' ' + col['split'])}: {METRIC_LABELS.get(m, m)}"] = _cell(vals)
                    long.append({"table": name, "base": base, "run": run, "label": label, "suite": col["suite"],
                                 "split": col["split"], "metric": m, "mean": np.mean(vals) if vals else np.nan,
                                 "sd": np.std(vals, ddof=1) if len(vals) > 1 else 0.0, "n_seeds": len(vals)})
            wide.append(row)
    return pd.DataFrame(long), pd.DataFrame(wide)


def _field_value(run, field):
    adapter = run.train_run["config"]["adapter"]
    if adapter.get(field) is None:
        raise DataError(f"{run.checkpoint}/run.json: adapter field {field!r} is not set")
    return adapter[field]


def _ratio(res: Results, params: pd.DataFrame | None, suite, base, run) -> str:
    """Adapter-to-base ratio (%): measured from the checkpoint and the base folder, else `orchmoe params`."""
    runs = res.get(suite, base, run, "eval")
    first = runs[min(runs)] if runs else None
    if first is not None:
        base_params = first.base_params()
        if base_params:
            return f"{100 * first.trainable_params() / base_params:.2f}%"
    if params is not None and {"base", "run"} <= set(params.columns):
        sel = params[(params.base == base) & (params.run == run)]
        if "suite" in params.columns:
            sel = sel[sel.suite == suite]
        col = next((c for c in ("ratio_percent", "adapter_to_base_pct") if c in params.columns), None)
        if len(sel) and col and pd.notna(sel[col].iloc[0]):
            return f"{float(sel[col].iloc[0]):.2f}%"
    return MISSING


def sweep_table(res: Results, name: str, spec: dict, params: pd.DataFrame | None = None):
    """OrchMoE Table 4: one row per abstract-task setting T (largest first), ratio, seen and unseen scores."""
    _need(spec, name, "suite", "base", "entries", "field", "columns")
    suite, base, field = spec["suite"], spec["base"], spec["field"]
    metrics = spec.get("metrics", ORCHMOE_METRICS)
    points = []
    for run in res.runs_of(suite, base, spec["entries"]):
        seeds = res.get(suite, base, run, "eval")
        points.append((_field_value(seeds[min(seeds)], field), run))
    points.sort(key=lambda p: -float(p[0]))
    long, wide = [], []
    for value, run in points:
        row = {spec.get("title", field): value, "Adapter-to-Base Parameter Ratio": _ratio(res, params, suite, base, run)}
        for col in spec["columns"]:
            for m in metrics:
                vals = res.metric(col.get("suite", suite), base, run, col["split"], m)
                row[f"{col.get('title', col['split'])}: {m}"] = _cell(vals)
                long.append({"table": name, "base": base, "run": run, field: value, "suite": col.get("suite", suite),
                             "split": col["split"], "metric": m, "mean": np.mean(vals) if vals else np.nan,
                             "sd": np.std(vals, ddof=1) if len(vals) > 1 else 0.0, "n_seeds": len(vals),
                             "ratio": row["Adapter-to-Base Parameter Ratio"]})
        wide.append(row)
    return pd.DataFrame(long), pd.DataFrame(wide)


def _domains(res: Results, suite: str) -> list[str]:
    for (s, _, _, _), seeds in res.by_key.items():
        if s == suite:
            eval_run = json.loads((seeds[min(seeds)].eval_dir / "run.json").read_text())
            data = Path(eval_run["inputs"]["data"]["path"])  # the split file evaluated
            manifest = (data.parent if data.suffix else data) / "manifest.json"
            if manifest.is_file():
                return json.loads(manifest.read_text())["domains"]
    raise DataError(f"suite {suite!r}: no evaluation whose data manifest lists the domains")


def _domain_runs(res: Results, suite, base, run, domain) -> dict:
    """Seed -> Run evaluated on `domain`: the per-domain run run@domain when the entry is per-domain."""
    return res.get(suite, base, f"{run}@{domain}", "eval") or res.get(suite, base, run, "eval")


def domain_metrics(res: Results, suite, base, run, domain) -> dict[str, list[float]]:
    """Per seed, every metric of `run` restricted to one domain's examples (recomputed from predictions.jsonl)."""
    from orchmoe.training.evaluate import metrics_from_predictions

    out = defaultdict(list)
    for _, r in sorted(_domain_runs(res, suite, base, run, domain).items()):
        rows = [p for p in res.predictions(r) if p["task"] == domain]
        if rows:
            for k, v in metrics_from_predictions(rows)["mean"].items():
                out[k].append(v)
    return out


def domains_table(res: Results, name: str, spec: dict):
    """MoA Tables 2 and 8: a row per domain and the Average (mean over domains), a column group per method."""
    _need(spec, name, "suite", "base", "runs")
    suite, base = spec["suite"], spec["base"]
    metrics = spec.get("metrics", ["perplexity", "bleu", "rougeL"])
    domains = _domains(res, suite)
    digits = {"perplexity": 4}
    per = {(run, d): domain_metrics(res, suite, base, run, d) for run in spec["runs"] for d in domains}
    long, wide = [], []
    for d in domains + ["Average"]:
        row = {"Domain": d.upper()}
        for run, label in spec["runs"].items():
            for m in metrics:
                if d == "Average":  # per seed: mean over domains, then mean ± sd over seeds
                    per_seed = [per[(run, x)][m] for x in domains]
                    n = min((len(v) for v in per_seed), default=0)
                    vals = [float(np.mean([v[i] for v in per_seed])) for i in range(n)]
                else:
                    vals = per[(run, d)][m]
                row[f"{label}: {METRIC_LABELS.get(m, m)}"] = _cell(vals, digits.get(m, 2))
                long.append({"table": name, "base": base, "run": run, "label": label, "domain": d, "metric": m,
                             "mean": np.mean(vals) if vals else np.nan,
                             "sd": np.std(vals, ddof=1) if len(vals) > 1 else 0.0, "n_seeds": len(vals)})
        wide.append(row)
    return pd.DataFrame(long), pd.DataFrame(wide)


def average_table(res: Results, name: str, spec: dict):
    """MoA Table 7: per method the averages over domains (the Average row of Table 2, one row per method)."""
    long, _ = domains_table(res, name, spec)
    avg = long[long.domain == "Average"]
    wide = []
    for run, label in spec["runs"].items():
        row = {"Methods": label}
        for r in avg[avg.run == run].itertuples():
            row[METRIC_LABELS.get(r.metric, r.metric)] = (MISSING if np.isnan(r.mean) else
                                                          f"{r.mean:.{4 if r.metric == 'perplexity' else 2}f} ± "
                                                          f"{r.sd:.{4 if r.metric == 'perplexity' else 2}f}")
        wide.append(row)
    return avg.reset_index(drop=True), pd.DataFrame(wide)


def domain_accuracy_table(res: Results, name: str, spec: dict):
    """MoA Table 3: test size, classifier and router accuracy (%) per domain, and their average over domains."""
    _need(spec, name, "suite", "base", "run")
    suite, base, run = spec["suite"], spec["base"], spec["run"]
    domains = _domains(res, suite)
    seeds = res.get(suite, base, run, "eval")
    if not seeds:
        raise DataError(f"report.tables.{name}: no evaluation of run {run!r} on {suite}/{base}")
    long, wide = [], []
    acc = {d: {"router": [], "classifier": [], "size": []} for d in domains}
    for _, r in sorted(seeds.items()):
        preds = res.predictions(r)
        for i, d in enumerate(domains):
            rows = [p for p in preds if p.get("domain_id") == i]
            acc[d]["size"].append(len(rows))
            for key, field in (("router", "predicted_domain"), ("classifier", "classifier_domain")):
                got = [p for p in rows if field in p]
                if got:
                    acc[d][key].append(100.0 * sum(p[field] == i for p in got) / len(got))
    for d in domains + ["Average"]:
        if d == "Average":
            size = [float(np.mean([acc[x]["size"][0] for x in domains]))]
            router = _mean_over(acc, domains, "router")
            classifier = _mean_over(acc, domains, "classifier")
            if not classifier:  # evaluations from before per-example classifier predictions: the pooled number
                classifier = [r.metrics["mean"]["classifier_accuracy"] for r in seeds.values()
                              if "classifier_accuracy" in r.metrics["mean"]]
        else:
            size, router, classifier = acc[d]["size"][:1], acc[d]["router"], acc[d]["classifier"]
        wide.append({"Domain": d.upper(), "test size": f"{size[0]:g}", "Classifier": _cell(classifier),
                     "Router": _cell(router)})
        long.append({"table": name, "base": base, "run": run, "domain": d, "test_size": size[0],
                     "classifier_accuracy": np.mean(classifier) if classifier else np.nan,
                     "router_accuracy": np.mean(router) if router else np.nan, "n_seeds": len(seeds)})
    return pd.DataFrame(long), pd.DataFrame(wide)


def _mean_over(acc, domains, key) -> list[float]:
    n = min(len(acc[d][key]) for d in domains)
    return [float(np.mean([acc[d][key][i] for d in domains])) for i in range(n)]


def params_table(res: Results, name: str, spec: dict, params: pd.DataFrame | None = None):
    """MoA Table 4: trainable parameters per method, counted in the checkpoints; MoA as n x per-LoRA + router."""
    _need(spec, name, "suite", "base", "runs")
    suite, base = spec["suite"], spec["base"]
    counts, long = {}, []
    for run in spec["runs"]:
        seeds = res.get(suite, base, run, "eval")
        if not seeds:
            per_domain = res.runs_of(suite, base, [run])
            seeds = res.get(suite, base, per_domain[0], "eval") if per_domain else {}
        counts[run] = seeds[min(seeds)].trainable_params() if seeds else None
    single = next((counts[r] for r in spec["runs"] if res.runs_of(suite, base, [r]) and
                   any("@" in x for x in res.runs_of(suite, base, [r]))), None)
    row = {"Model": "trainable parameters"}
    for run, label in spec["runs"].items():
        n = counts[run]
        text = MISSING if n is None else f"{n:,}"
        seeds = res.get(suite, base, run, "eval")
        method = seeds[min(seeds)].method if seeds else None
        if n is not None and single and method in routed():  # a bank of k LoRAs + a router (registry)
            k = seeds[min(seeds)].train_run["config"]["adapter"].get("n_skills")
            if k and n >= k * single:
                text = f"{single:,}*{k}+{n - k * single:,}"
        row[label] = text
        long.append({"table": name, "base": base, "run": run, "label": label, "trainable_params": n})
    wide = [row]
    if params is not None and {"base", "run", "trainable"} <= set(params.columns):
        # `orchmoe params`: the same count from the architecture alone, and the paper's value where it gives one
        counted, paper = {"Model": "counted from the architecture"}, {"Model": "paper"}
        for run, label in spec["runs"].items():
            sel = params[(params.base == base) & params.run.isin([run, f"{run}@<domain>"])]
            counted[label] = f"{int(sel.trainable.iloc[0]):,}" if len(sel) and pd.notna(sel.trainable.iloc[0]) else MISSING
            value = sel.paper.iloc[0] if len(sel) and "paper" in sel else None
            paper[label] = str(value) if isinstance(value, str) and value else MISSING
        wide.append(counted)
        if any(v != MISSING for k, v in paper.items() if k != "Model"):
            wide.append(paper)
    return pd.DataFrame(long), pd.DataFrame(wide)


LAYOUTS = {"methods": methods_table, "sweep": sweep_table, "domains": domains_table, "average": average_table,
           "domain_accuracy": domain_accuracy_table, "params": params_table}


def build_paper_tables(results, experiment: str, spec: dict, out_dir, params_csv=None) -> list[str]:
    res = Results(collect_runs(Path(results), experiment))
    params = pd.read_csv(params_csv) if params_csv and Path(params_csv).is_file() else None
    out = Path(out_dir)
    written, longs = [], []
    for name, table in spec.items():
        layout = table.get("layout")
        if layout not in LAYOUTS:
            raise ConfigError(f"config report.tables.{name}.layout: {layout!r} is not a table layout {sorted(LAYOUTS)}")
        fn = LAYOUTS[layout]
        long, wide = fn(res, name, table, params) if layout in ("sweep", "params") else fn(res, name, table)
        caption = (f"{table['caption']}. Experiment {experiment}: mean ± sd over seeds; generated by "
                   f"`orchmoe paper-tables` from {Path(results) / 'eval' / experiment}.")
        _write(out, name, wide, caption, f"tab:{experiment}-{name}")
        longs.append(long.assign(table=name))
        written.append(name)
    write_text(out / "long.csv", pd.concat(longs, ignore_index=True).to_csv(index=False, float_format="%.4f"))
    return written
