"""`orchmoe train` and `orchmoe evaluate`: explicit inputs and outputs, a run.json beside every output."""
from __future__ import annotations

import sys
from pathlib import Path

from orchmoe.errors import ConfigError
from orchmoe.io import json_or_file  # noqa: F401  (models/cli.py and tests use it from io)


def base_spec(value: str):
    return json_or_file(value) if value.lstrip().startswith("{") else value


def base_input(value: str) -> Path | None:
    """What run.json records for --base: a fetched folder's fetch.json (it lists the md5 of every file, so a
    multi-GB base is not hashed again by every job), else the folder / file itself; None for a hub id or tiny spec."""
    spec = base_spec(value)
    path = Path(str(spec.get("path") or "")) if isinstance(spec, dict) else Path(spec)
    if not str(path) or str(path) == "." or not path.exists():
        return None
    return path / "fetch.json" if (path / "fetch.json").is_file() else path


def register(sub) -> None:
    p = sub.add_parser("train", help="train adapters of one method on a suite")
    p.add_argument("--base", required=True, help="model folder, GGUF folder, hub id, or a tiny-model JSON spec")
    p.add_argument("--data", required=True, help="suite folder (train.jsonl + manifest.json)")
    p.add_argument("--adapter-config", required=True, help="JSON object or file (AdapterConfig fields)")
    p.add_argument("--train-config", default="{}", help="JSON object or file (TrainConfig fields)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="final checkpoint folder (written atomically at the end)")
    p.add_argument("--work", required=True, help="resumable state; keep it out of the workflow's declared outputs")
    p.add_argument("--init-skills", nargs="*", default=None, help="single-LoRA checkpoints, one per skill")
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="generate on a suite split and score it")
    p.add_argument("--base", required=True)
    p.add_argument("--checkpoint", required=True, help="adapter checkpoint folder, or 'none' for the bare base model")
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="eval", choices=["eval", "unseen", "train"])
    p.add_argument("--out", required=True)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-source-length", type=int, default=512)
    p.add_argument("--max-target-length", type=int, default=64)
    p.add_argument("--num-beams", type=int, default=1, help="1: greedy (Tk-Instruct); mttl's NI runs use 4")
    p.add_argument("--seed", type=int, default=0, help="seed of the MoA comparison classifier")
    p.add_argument("--xlingual-tokenizer", default=None,
                   help="folder with the GPT-2 tokenizer files: score with the official xlingual track")
    p.set_defaults(func=_evaluate)


def resolve_adapter_config(raw: dict, manifest: dict):
    """Fill what the suite decides: n_tasks (Poly/MHR/OrchMoE) and, for MoA, one LoRA per domain."""
    from orchmoe.adapters import AdapterConfig, registry

    raw = dict(raw)
    spec = registry.get(raw.get("method", "lora"))
    if spec.uses_n_tasks and raw.get("n_tasks") is None:
        raw["n_tasks"] = len(manifest["tasks"])
    if spec.domain_ids and raw.get("n_skills") is None:
        if not manifest.get("domains"):
            raise ConfigError(f"method {spec.name!r} needs a suite with domain labels (manifest 'domains' is empty)")
        raw["n_skills"] = len(manifest["domains"])
    return AdapterConfig.from_dict(raw)


def _train(args) -> None:
    from orchmoe.data.superni import read_suite
    from orchmoe.io import atomic_path
    from orchmoe.models.loading import load_base

    from orchmoe.provenance import write_run_json
    from .trainer import TrainConfig, train, write_outputs

    manifest = read_suite(args.data)
    adapter_cfg = resolve_adapter_config(json_or_file(args.adapter_config), manifest)
    train_cfg = TrainConfig.from_dict(json_or_file(args.train_config))
    base, tokenizer = load_base(base_spec(args.base))
    model = train(base, tokenizer, args.data, adapter_cfg, train_cfg, args.seed, args.work, args.init_skills)
    out = Path(args.out)
    with atomic_path(out) as tmp:
        write_outputs(tmp, model)
        inputs = {"data": Path(args.data), "base": base_input(args.base)}
        inputs.update({f"init_skill_{i}": Path(d) for i, d in enumerate(args.init_skills or [])})
        write_run_json(tmp / "run.json", " ".join(sys.argv), {"adapter": adapter_cfg.to_dict(),
                       "train": train_cfg.__dict__, "base": args.base}, args.seed, inputs,
                       {p.name: p for p in sorted(tmp.iterdir())})
    print(f"wrote {out}")


def _evaluate(args) -> None:
    from orchmoe.adapters.model import CONFIG_NAME
    from orchmoe.io import atomic_path, write_json, write_jsonl
    from orchmoe.models.loading import load_base
    from orchmoe.seeding import seed_everything

    from .evaluate import evaluate
    from orchmoe.provenance import write_run_json

    checkpoint = None if args.checkpoint == "none" else args.checkpoint
    if args.num_beams < 1:
        raise ConfigError(f"--num-beams {args.num_beams}: must be at least 1")
    if checkpoint and not (Path(checkpoint) / CONFIG_NAME).is_file():
        raise ConfigError(f"{checkpoint}: not an adapter checkpoint ({CONFIG_NAME} missing)")
    base, tokenizer = load_base(base_spec(args.base))
    seed_everything(args.seed)
    rows, metrics = evaluate(base, tokenizer, args.data, args.split, checkpoint, args.batch_size,
                             args.max_source_length, args.max_target_length,
                             xlingual_tokenizer=args.xlingual_tokenizer, seed=args.seed, num_beams=args.num_beams)
    out = Path(args.out)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        write_jsonl(tmp / "predictions.jsonl", rows)
        write_json(tmp / "metrics.json", metrics)
        inputs = {"data": Path(args.data) / f"{args.split}.jsonl",
                  **({"checkpoint": Path(checkpoint)} if checkpoint else {}),
                  "base": base_input(args.base)}
        if "classifier_accuracy" in metrics["mean"]:  # the MoA comparison classifier is fitted on train.jsonl
            inputs["train_data"] = Path(args.data) / "train.jsonl"
        config = {k: v for k, v in vars(args).items() if k not in ("func", "command", "out", "seed")}
        write_run_json(tmp / "run.json", " ".join(sys.argv), config, args.seed, inputs,
                       {"predictions.jsonl": tmp / "predictions.jsonl", "metrics.json": tmp / "metrics.json"})
    print(f"{out}: " + ", ".join(f"{k}={v}" for k, v in metrics["mean"].items()))
