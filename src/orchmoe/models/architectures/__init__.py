"""The architecture config.json of each paper base (a few KB each), so parameter tables need no weights.

`load_architecture("glm-10b")` returns a transformers config; `build_on_meta(config)` builds the model on the meta
device (no memory). Layouts transformers has no class for are native here: GLM (`orchmoe/models/glm.py`) and
Baichuan-7B (`orchmoe/models/baichuan.py`). Keys starting with "_" are notes (the source of the numbers).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from orchmoe.errors import ConfigError

HERE = Path(__file__).parent


def names() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.json"))


def load_architecture(name: str):
    from transformers import AutoConfig

    from .. import baichuan, glm  # noqa: F401  register model_type orchmoe_glm / orchmoe_baichuan

    path = HERE / f"{name}.json"
    if not path.is_file():
        raise ConfigError(f"architecture {name!r}: not shipped (known: {', '.join(names())})")
    raw = {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}
    config = AutoConfig.for_model(raw.pop("model_type"), **raw)
    config.orchmoe_architecture = name
    # transformers 5 always ties T5's lm_head in the class (a checkpoint with its own head is untied when loaded):
    # remember the checkpoint's own setting so the meta model counts T5 v1.1's separate head.
    config.orchmoe_untied_head = raw.get("tie_word_embeddings") is False
    return config


def build_on_meta(config) -> nn.Module:
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    from .. import baichuan, glm  # noqa: F401

    cls = AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM
    with torch.device("meta"):
        model = cls.from_config(config)
        head, embeddings = model.get_output_embeddings(), model.get_input_embeddings()
        if getattr(config, "orchmoe_untied_head", False) and head is not None and head.weight is embeddings.weight:
            model.set_output_embeddings(nn.Linear(head.in_features, head.out_features, bias=False))
    return model


def base_architecture(spec: dict):
    """The config a workflow base entry is counted with: its `architecture`, the tiny layout it pretrains, the
    SmolLM2 layout, or a local model folder's config.json; None when only the hub could say (no `architecture`)."""
    if spec.get("architecture"):
        return load_architecture(spec["architecture"])
    source = spec.get("source")
    if source in ("pretrain", "tiny"):
        from ..tiny import tiny_config

        dims = spec.get("pretrain", spec)
        keys = ("d_model", "n_layers", "n_heads", "d_ff")
        return tiny_config(spec["arch"], **{k: dims[k] for k in keys if k in dims})
    if source == "smollm2":
        return load_architecture("smollm2-135m")
    path = Path(str(spec.get("path", "")))
    if spec.get("path") and (path / "config.json").is_file():
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(path)
    return None
