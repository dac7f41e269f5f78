"""Parameter accounting (the adapter-to-base ratio of OrchMoE Table 4, MoA Table 4) without materialising weights.

`count_parameters(config, adapter_config)` builds the base on the meta device and attaches the adapters.
`config_rows(config)` does it for every method entry x suite x base x sweep point of a workflow config, with the
base layouts from `orchmoe.models.architectures` and the papers' numbers beside ours (`paper.py`).
"""
from __future__ import annotations

import itertools

from orchmoe.models.architectures import base_architecture, build_on_meta

from . import registry
from .config import AdapterConfig
from .paper import reference_for

COLUMNS = ["experiment", "suite", "base", "architecture", "run", "method", "rank", "n_skills", "n_tasks",
           "n_abstract_tasks", "trainable", "adapter", "router", "base_params", "ratio_percent", "paper",
           "paper_source"]


def count_parameters(config, cfg: AdapterConfig | dict) -> dict:
    """Trainable (adapter + router) parameters and their ratio to the base, for an HF config (meta device)."""
    from .model import attach_adapters

    base = build_on_meta(config)
    n_base = sum(p.numel() for p in base.parameters())
    model = attach_adapters(base, cfg)
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_router = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and ".bank." not in f".{n}")
    return {"method": model.cfg.method, "trainable": n_trainable, "adapter": n_trainable - n_router,
            "router": n_router, "base": n_base, "ratio_percent": 100.0 * n_trainable / n_base}


def _sweep(entry: dict):
    sweep = entry.get("sweep") or {}
    keys = sorted(sweep)
    for values in itertools.product(*(sweep[k] for k in keys)):
        point = dict(zip(keys, values))
        yield point, "".join(f"-{k}{v}" for k, v in point.items())


def config_rows(config: dict, manifests: dict | None = None) -> list[dict]:
    """One row per method entry x suite x base x sweep point (a per-domain entry: one domain's LoRA).

    The task count T of a suite is its `n_tasks`, or, for `n_tasks: all`, the sampled suite's manifest
    (`manifests`: suite -> manifest.json contents); without either, routed methods' rows carry no counts."""
    fields = set(AdapterConfig.__dataclass_fields__)
    suites, bases, rows, layouts = config.get("suites", {}), config.get("bases", {}), [], {}
    manifests = manifests or {}
    for name, entry in config.get("methods", {}).items():
        for suite in entry.get("suites", list(suites)):
            s, manifest = suites[suite], manifests.get(suite) or {}
            n_tasks = len(manifest["tasks"]) if manifest.get("tasks") else (
                s.get("n_tasks") if isinstance(s.get("n_tasks"), int) else None)
            domains = entry.get("domains", manifest.get("domains") or s.get("domains", []))
            for base in entry.get("bases", list(bases)):
                spec = bases[base]
                if base not in layouts:
                    layouts[base] = base_architecture(spec)
                layout = layouts[base]
                for point, suffix in _sweep(entry):
                    adapter = {k: v for k, v in entry.items() if k in fields}
                    adapter.update(point)
                    adapter.setdefault("target_modules", spec["target_modules"])
                    method = registry.get(adapter.get("method", "lora"))
                    if method.uses_n_tasks:
                        adapter.setdefault("n_tasks", n_tasks)
                    if method.domain_ids and domains:
                        adapter.setdefault("n_skills", len(domains))
                    if method.uses_n_tasks and adapter.get("n_tasks") is None:
                        rows.append({k: None for k in COLUMNS} | {  # T unknown until the suite is sampled
                            "experiment": config.get("experiment"), "suite": suite, "base": base,
                            "run": name + suffix, "method": adapter["method"]})
                        continue
                    cfg = AdapterConfig.from_dict(adapter)
                    row = {"experiment": config.get("experiment"), "suite": suite, "base": base,
                           "architecture": getattr(layout, "orchmoe_architecture", None) if layout else None,
                           "run": name + suffix + ("@<domain>" if entry.get("per_domain") else ""),
                           "method": cfg.method, "rank": cfg.rank, "n_skills": cfg.n_skills, "n_tasks": n_tasks,
                           "n_abstract_tasks": cfg.n_abstract_tasks}
                    if layout is not None:
                        c = count_parameters(layout, cfg)
                        row.update(trainable=c["trainable"], adapter=c["adapter"], router=c["router"],
                                   base_params=c["base"], ratio_percent=c["ratio_percent"])
                    ref = reference_for({**row, **cfg.to_dict(), "n_tasks": n_tasks})
                    row["paper"], row["paper_source"] = (ref["text"], ref["source"]) if ref else (None, None)
                    rows.append({k: row.get(k) for k in COLUMNS})
    return rows
