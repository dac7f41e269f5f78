"""`orchmoe train` and `orchmoe evaluate`: explicit inputs and outputs, a run.json beside every output."""
from __future__ import annotations

import os
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
    path = Path(os.path.expanduser(str(spec.get("path") or "") if isinstance(spec, dict) else spec))  # as load_base
    if not str(path) or str(path) == "." or not path.exists():
        return None
    return path / "fetch.json" if (path / "fetch.json").is_file() else path


def base_md5(value: str, model) -> str:
    """What identifies --base for resuming: its spec (the keys that say how to load it), the md5 run.json records
    for its files (base_input) and, for a hub id, the snapshot commit transformers loaded."""
    import hashlib
    import json

    from orchmoe.io import md5_path
    from orchmoe.models.loading import NOT_LOADING

    spec = base_spec(value)
    if isinstance(spec, dict):
        spec = {k: v for k, v in spec.items() if k not in NOT_LOADING}
    files = base_input(value)
    blob = {"spec": spec, "files": md5_path(files) if files else None,
            "hub_commit": getattr(model.config, "_commit_hash", None)}
    return hashlib.md5(json.dumps(blob, sort_keys=True).encode()).hexdigest()


def register(sub) -> None:
    p = sub.add_parser("train", help="train adapters of one method on a suite")
    p.add_argument("--base", required=True, help="model folder, GGUF folder, hub id, or a tiny-model JSON spec")
    p.add_argument("--data", required=True, help="suite folder (train.jsonl + manifest.json)")
    p.add_argument("--adapter-config", required=True, help="JSON object or file (AdapterConfig fields)")
    p.add_argument("--train-config", default="{}", help="JSON object or file (TrainConfig fields)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="final checkpoint folder (written atomically at the end)")
    p.add_argument("--work", required=True,
                   help="resumable state, removed once --out is written; keep it out of the workflow's outputs")
    p.add_argument("--init-skills", nargs="*", default=None, help="single-LoRA checkpoints, one per skill")
    p.add_argument("--oracle-skills", default=None,
                   help="the built-in suite's skills.json: poly routes with this fixed ground-truth allocation")
    p.add_argument("--per-task", action="store_true",
                   help="poly as per-task LoRAs: one bank skill per seen task, each task routed to its own only")
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

    p = sub.add_parser("adapt", help="few-shot: train only the routing for the held-out tasks, skills frozen; evaluate")
    p.add_argument("--base", required=True)
    p.add_argument("--checkpoint", required=True, help="a trained adapter checkpoint (its skills stay frozen)")
    p.add_argument("--data", required=True, help="suite folder with unseen.jsonl and unseen_train.jsonl")
    p.add_argument("--out", required=True, help="evaluation folder (split 'fewshot'); the adapted routing in adapter/")
    p.add_argument("--lr", type=float, default=0.03, help="routing learning rate")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=16, help="training batch size")
    p.add_argument("--eval-batch-size", type=int, default=16)
    p.add_argument("--max-source-length", type=int, default=512)
    p.add_argument("--max-target-length", type=int, default=64)
    p.add_argument("--num-beams", type=int, default=1, help="decoding of the held-out eval examples (as evaluate)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_adapt)


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


def oracle_fields(skills_file, manifest: dict) -> dict:
    """The oracle reference's allocation: every task (seen, then held-out) uniform over its ground-truth skills,
    one bank skill per primitive of the built-in suite (docs/methods.md)."""
    from orchmoe.io import read_json

    meta = read_json(skills_file)
    if not isinstance(meta, dict) or not isinstance(meta.get("skills"), dict) or not meta.get("primitives"):
        raise ConfigError(f"{skills_file}: not a built-in suite skills.json (keys 'skills', 'primitives')")
    names = list(manifest["tasks"]) + list(manifest.get("unseen_tasks", []))
    missing = [t for t in names if t not in meta["skills"]]
    if missing:
        raise ConfigError(f"{skills_file}: no skills listed for task {missing[0]!r}")
    prims = list(meta["primitives"])
    rows = []
    for t in names:
        own = set(meta["skills"][t])
        rows.append([1.0 / len(own) if p in own else 0.0 for p in prims])
    return {"oracle_allocation": rows, "task_names": names, "n_tasks": len(names), "n_skills": len(prims)}


def per_task_fields(manifest: dict) -> dict:
    """Per-task LoRAs as a fixed one-hot allocation: skill t is task t's own LoRA and only its examples train it;
    a held-out task (id -1) gets the mean row, i.e. the average of the per-task LoRAs (docs/methods.md)."""
    names = list(manifest["tasks"])
    rows = [[1.0 if i == j else 0.0 for j in range(len(names))] for i in range(len(names))]
    return {"oracle_allocation": rows, "task_names": names, "n_tasks": len(names), "n_skills": len(names)}


def _train(args) -> None:
    from orchmoe.data.superni import read_suite
    from orchmoe.io import atomic_path
    from orchmoe.models.loading import load_base
    from orchmoe.provenance import write_run_json

    from .trainer import TrainConfig, clear_resume_state, train, write_outputs

    manifest = read_suite(args.data)
    raw = json_or_file(args.adapter_config)
    if args.oracle_skills and args.per_task:
        raise ConfigError("train: --oracle-skills and --per-task are two different references; give one")
    if args.oracle_skills:
        raw = {**raw, **oracle_fields(args.oracle_skills, manifest)}
    if args.per_task:
        raw = {**raw, **per_task_fields(manifest)}
    adapter_cfg = resolve_adapter_config(raw, manifest)
    train_cfg = TrainConfig.from_dict(json_or_file(args.train_config))
    base, tokenizer = load_base(base_spec(args.base))
    model = train(base, tokenizer, args.data, adapter_cfg, train_cfg, args.seed, args.work, args.init_skills,
                  base_md5=base_md5(args.base, base))
    out = Path(args.out)
    with atomic_path(out) as tmp:
        write_outputs(tmp, model)
        inputs = {"data": Path(args.data), "base": base_input(args.base)}
        inputs.update({f"init_skill_{i}": Path(d) for i, d in enumerate(args.init_skills or [])})
        inputs.update({"oracle_skills": Path(args.oracle_skills)} if args.oracle_skills else {})
        write_run_json(tmp / "run.json", " ".join(sys.argv), {"adapter": adapter_cfg.to_dict(),
                       "train": train_cfg.__dict__, "base": args.base}, args.seed, inputs,
                       {p.name: p for p in sorted(tmp.iterdir())},
                       {"resumed_from_step": model.resumed_from_step, "fingerprint": model.fingerprint})
    # only now that --out is in place: a job killed before this line still resumes from its last checkpoint
    clear_resume_state(args.work)
    print(f"wrote {out}")


def _evaluate(args) -> None:
    from orchmoe.adapters.model import CONFIG_NAME
    from orchmoe.io import atomic_path, write_json, write_jsonl
    from orchmoe.models.loading import load_base
    from orchmoe.provenance import write_run_json
    from orchmoe.seeding import seed_everything

    from .evaluate import evaluate

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


def _adapt(args) -> None:
    import csv
    import shutil
    import tempfile

    from orchmoe.adapters.model import CONFIG_NAME
    from orchmoe.io import atomic_path, read_json, read_jsonl, write_json, write_jsonl
    from orchmoe.models.loading import load_base
    from orchmoe.provenance import write_run_json

    from .adapt import adapt, with_new_ids
    from .evaluate import evaluate

    if not (Path(args.checkpoint) / CONFIG_NAME).is_file():
        raise ConfigError(f"{args.checkpoint}: not an adapter checkpoint ({CONFIG_NAME} missing)")
    if args.steps < 0 or args.lr <= 0 or args.batch_size < 1:
        raise ConfigError(f"adapt: --steps {args.steps} / --lr {args.lr} / --batch-size {args.batch_size} out of range")
    base, tokenizer = load_base(base_spec(args.base))
    model, first, rows = adapt(base, tokenizer, args.data, args.checkpoint, args.lr, args.steps, args.batch_size,
                               args.seed, args.max_source_length, args.max_target_length)
    out = Path(args.out)
    with atomic_path(out) as tmp, tempfile.TemporaryDirectory() as suite:
        tmp.mkdir()
        model.save_adapters(tmp / "adapter")
        with open(tmp / "adapt_log.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["step", "loss"])
            writer.writeheader()
            writer.writerows(rows)
        # the held-out eval examples with the adapted task ids (Poly/MHR), in a suite the evaluator reads
        manifest = read_json(Path(args.data) / "manifest.json")
        write_jsonl(Path(suite) / "unseen.jsonl", with_new_ids(read_jsonl(Path(args.data) / "unseen.jsonl"),
                                                               manifest["unseen_tasks"], first))
        shutil.copy(Path(args.data) / "train.jsonl", Path(suite) / "train.jsonl")  # MoA's comparison classifier
        write_json(Path(suite) / "manifest.json", manifest)
        fresh, _ = load_base(base_spec(args.base))  # adapters were injected into `base` in place
        preds, metrics = evaluate(fresh, tokenizer, suite, "unseen", tmp / "adapter", args.eval_batch_size,
                                  args.max_source_length, args.max_target_length, seed=args.seed,
                                  num_beams=args.num_beams)
        write_jsonl(tmp / "predictions.jsonl", preds)
        write_json(tmp / "metrics.json", metrics)
        inputs = {"data": Path(args.data) / "unseen.jsonl", "few_shot": Path(args.data) / "unseen_train.jsonl",
                  "checkpoint": Path(args.checkpoint), "base": base_input(args.base)}
        config = {k: v for k, v in vars(args).items() if k not in ("func", "command", "out", "seed")}
        # every output, the adapted adapter/ file by file included: `orchmoe trace --verify` checks them
        write_run_json(tmp / "run.json", " ".join(sys.argv), config, args.seed, inputs,
                       {p.name: p for p in sorted(tmp.iterdir())})
    print(f"{out}: " + ", ".join(f"{k}={v}" for k, v in metrics["mean"].items()))
