"""`orchmoe params`: trainable parameters and adapter-to-base ratio (OrchMoE / MoA Table 4) on the meta device;
`orchmoe methods`: the method registry."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("params", help="count trainable parameters of methods for model configs (no weights)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", help="a workflow config: every method entry x suite x base x sweep point")
    src.add_argument("--architecture", help="a shipped base layout (orchmoe/models/architectures), e.g. glm-10b")
    src.add_argument("--model-config", help="a Hugging Face config.json (or a model folder holding one)")
    p.add_argument("--method", action="append",
                   help="an AdapterConfig as JSON, or a bare method name with the paper's settings; repeatable "
                        "(needed with --architecture / --model-config)")
    p.add_argument("--target-modules", nargs="+",
                   help="default: the layout's q, k, v (T5: q k v; GLM: query_key_value:q,k,v; Baichuan: "
                        "W_pack:q,k,v; otherwise q_proj k_proj v_proj)")
    p.add_argument("--n-tasks", type=int, default=100)
    p.add_argument("--data-root", default="data/processed",
                   help="with --config: sampled suites (<root>/<experiment>/<suite>/manifest.json) give T for "
                        "suites with n_tasks: all")
    p.add_argument("--out", help="also write the rows as CSV (atomically)")
    p.set_defaults(func=_params)
    m = sub.add_parser("methods", help="list the registered methods (adapters/registry.py; ORCHMOE_METHODS adds more)")
    m.set_defaults(func=_methods)


def _methods(args) -> None:
    from .registry import specs

    for s in specs():
        needs = [k for k in ("task_ids", "domain_ids") if getattr(s, k)]
        print(f"{s.name:<10} {s.label:<10} {s.router.__module__}.{s.router.__name__}  paper={s.paper}"
              + (f"  options={s.options}" if s.options else "") + (f"  needs {', '.join(needs)}" if needs else ""))


# q, k and v in layouts that fuse them: three LoRAs on the fused linear's slices, as the papers adapt them.
FUSED_QKV = {"orchmoe_glm": ["query_key_value:q,k,v"], "orchmoe_baichuan": ["W_pack:q,k,v"]}


def default_targets(config) -> list[str]:
    """The q, k, v projections of a model config's layout (the default `--target-modules`)."""
    if config.model_type in FUSED_QKV:
        return FUSED_QKV[config.model_type]
    return ["q", "k", "v"] if config.is_encoder_decoder else ["q_proj", "k_proj", "v_proj"]


def _fmt(value, spec=","):
    return "-" if value is None else format(value, spec) if not isinstance(value, str) else value


def _print(rows: list[dict]) -> None:
    cols = [("suite", "suite", ""), ("base", "base", ""), ("run", "run", ""), ("trainable", "trainable", ","),
            ("router", "router", ","), ("base_params", "base", ","), ("ratio_percent", "ratio %", ".4f"),
            ("paper", "paper", "")]
    cells = [[h for _, h, _ in cols]] + [[_fmt(r.get(k), f) if f else _fmt(r.get(k)) for k, _, f in cols]
                                         for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    for line in cells:
        print("  ".join(c.ljust(w) if i < 3 or i == len(cols) - 1 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(line, widths))).rstrip())


def _params(args) -> None:
    import csv
    import io
    import json
    from pathlib import Path

    from orchmoe.errors import ConfigError

    from . import registry
    from .paper import settings
    from .params import COLUMNS, config_rows, count_parameters

    if args.config:
        import yaml

        path = Path(args.config)
        if not path.is_file():
            raise ConfigError(f"--config {path}: file not found")
        config = yaml.safe_load(path.read_text())
        manifests = {}
        for suite in config.get("suites", {}):
            file = Path(args.data_root) / str(config.get("experiment")) / suite / "manifest.json"
            if file.is_file():
                manifests[suite] = json.loads(file.read_text())
        rows = config_rows(config, manifests)
    else:
        if not args.method:
            raise ConfigError("--method is needed with --architecture / --model-config")
        if args.architecture:
            from orchmoe.models.architectures import load_architecture

            config = load_architecture(args.architecture)
        else:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(args.model_config)
        targets = args.target_modules or default_targets(config)
        rows = []
        for spec in args.method:
            cfg = json.loads(spec) if spec.lstrip().startswith("{") else {"method": spec, **settings().get(spec, {})}
            cfg.setdefault("target_modules", targets)
            if registry.get(cfg.get("method", "lora")).uses_n_tasks:
                cfg.setdefault("n_tasks", args.n_tasks)
            c = count_parameters(config, cfg)
            rows.append({"base": args.architecture or args.model_config, "run": c["method"], "method": c["method"],
                         "trainable": c["trainable"], "adapter": c["adapter"], "router": c["router"],
                         "base_params": c["base"], "ratio_percent": c["ratio_percent"]})
    _print(rows)
    if args.out:
        from orchmoe.io import write_text

        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: r.get(k) for k in COLUMNS} for r in rows)
        write_text(args.out, buf.getvalue())
