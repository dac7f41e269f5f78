"""`orchmoe params`: trainable parameters and adapter-to-base ratio (OrchMoE Table 4's column) per method config.

The model is built on the meta device, so a T5-XXL config is counted without allocating its 11 B weights.
"""
from __future__ import annotations

import json
from pathlib import Path

from orchmoe.errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser("params", help="count trainable adapter/router parameters and the adapter-to-base ratio")
    p.add_argument("--model", required=True,
                   help="a preset (t5-v1_1-xxl-lm-adapt, smollm2-135m, tiny-t5, tiny-llama, tiny-gpt2), "
                        "a model folder with config.json, or a config.json file")
    p.add_argument("--method", action="append", required=True, metavar="JSON_OR_FILE",
                   help="adapter config as inline JSON or a JSON file; repeat for several methods")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    p.set_defaults(func=_params)


def load_model_config(spec: str):
    """A transformers config from a preset name, a model folder or a config.json (no weights are read)."""
    from transformers import AutoConfig

    from orchmoe.models.tiny import tiny_config

    from .params import PRESETS

    if spec in PRESETS:
        return PRESETS[spec]()
    if spec.startswith("tiny-") and spec[5:] in ("t5", "llama", "gpt2"):
        return tiny_config(spec[5:])
    path = Path(spec)
    if path.is_dir() and (path / "config.json").is_file():
        return AutoConfig.from_pretrained(str(path))
    if path.is_file() and path.suffix == ".json":
        return AutoConfig.from_pretrained(str(path.parent)) if path.name == "config.json" else \
            AutoConfig.for_model(**json.loads(path.read_text()))
    raise ConfigError(f"--model={spec!r}: not a preset ({', '.join(sorted(PRESETS))}, tiny-t5, tiny-llama, "
                      "tiny-gpt2), a model folder with config.json, or a config .json file")


def load_method_config(spec: str) -> dict:
    path = Path(spec)
    text = path.read_text() if path.is_file() else spec
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"--method={spec!r}: neither a JSON object nor a readable JSON file ({e.msg})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--method={spec!r}: must be a JSON object")
    return data.get("orchmoe_adapter", data)  # a saved adapter_config.json works too


def _params(args) -> None:
    from .params import count_parameters

    config = load_model_config(args.model)
    rows = [count_parameters(config, load_method_config(m)) for m in args.method]
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return
    print(f"model: {args.model} ({rows[0]['base']:,} base parameters)")
    print(f"{'method':<10} {'trainable':>14} {'adapter':>14} {'router':>12} {'ratio %':>9}")
    for r in rows:
        print(f"{r['method']:<10} {r['trainable']:>14,} {r['adapter']:>14,} {r['router']:>12,} "
              f"{r['ratio_percent']:>9.4f}")
