"""`orchmoe params`: trainable parameters and adapter-to-base ratio (OrchMoE Table 4) on the meta device."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("params", help="count trainable parameters of methods for a model config (no weights)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", help="a built-in config: t5-v1_1-xxl-lm-adapt, smollm2-135m")
    src.add_argument("--model-config", help="a Hugging Face config.json (or a model folder holding one)")
    p.add_argument("--method", action="append", required=True,
                   help="an AdapterConfig as JSON, or a bare method name with the paper's settings; repeatable")
    p.add_argument("--target-modules", nargs="+", help="default: q k v (T5) or q_proj k_proj v_proj")
    p.add_argument("--n-tasks", type=int, default=100)
    p.set_defaults(func=_params)


# The papers' equal-budget settings (OrchMoE section 4.2): LoRA r=32; 4 experts of r=8; OrchMoE 4 skills of r=4.
PAPER = {"lora": {"rank": 32}, "moe_lora": {"rank": 8, "n_skills": 4}, "poly": {"rank": 8, "n_skills": 4},
         "mhr": {"rank": 8, "n_skills": 4, "n_splits": 8}, "orchmoe": {"rank": 4, "n_skills": 4},
         "moa": {"rank": 8, "n_skills": 8}}


def _params(args) -> None:
    import json

    from transformers import AutoConfig

    from .params import PRESETS, count_parameters

    if args.preset:
        if args.preset not in PRESETS:
            from orchmoe.errors import ConfigError

            raise ConfigError(f"--preset {args.preset!r}: known presets are {', '.join(PRESETS)}")
        config = PRESETS[args.preset]()
    else:
        config = AutoConfig.from_pretrained(args.model_config)
    targets = args.target_modules or (["q", "k", "v"] if config.is_encoder_decoder else ["q_proj", "k_proj", "v_proj"])
    print(f"{'method':<10} {'trainable':>14} {'router':>12} {'base':>16} {'ratio %':>9}")
    for spec in args.method:
        cfg = json.loads(spec) if spec.lstrip().startswith("{") else {"method": spec, **PAPER.get(spec, {})}
        cfg.setdefault("target_modules", targets)
        if cfg["method"] in ("poly", "mhr", "orchmoe"):
            cfg.setdefault("n_tasks", args.n_tasks)
        c = count_parameters(config, cfg)
        print(f"{c['method']:<10} {c['trainable']:>14,} {c['router']:>12,} {c['base']:>16,} {c['ratio_percent']:>9.4f}")
