"""Load a base model and its tokenizer from a Hugging Face hub id, a local directory, a GGUF file or a tiny config.

`load_base("path/to/dir")` decides by what the folder holds: config.json (an ordinary HF model directory, e.g. a
pretrained tiny demo base), or a *.gguf file (e.g. SmolLM2 extracted by `orchmoe fetch-smollm2`). Anything that is
not an existing path is taken as a hub id (needs internet or the HF cache).
"""
from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

from orchmoe.errors import ConfigError


def _model_class(config):
    return AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM


def _finish(model, tokenizer):
    if tokenizer.pad_token_id is None:  # decoder-only tokenizers often have no pad token
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.eval(), tokenizer


SOURCES = ("hub", "local", "gguf", "tiny")


def load_base(spec: str | Path | dict, dtype: torch.dtype = torch.float32):
    """Returns (model, tokenizer) in eval mode.

    spec: a folder / .gguf file / hub id, or a dict {"source": "hub" | "local" | "gguf" | "tiny", ...}:
    hub -> "name"; local -> "path"; gguf -> "path" (a .gguf file, or a folder holding one); tiny -> "arch" plus
    `tiny_config` keyword arguments and an optional "seed"."""
    if isinstance(spec, dict):
        source = spec.get("source")
        if source not in SOURCES:
            raise ConfigError(f"base spec: source={source!r} must be one of {SOURCES}")
        if source == "tiny":
            from .tiny import ARCHS, build_tiny, byte_tokenizer

            if spec.get("arch") not in ARCHS:
                raise ConfigError(f"base spec: arch={spec.get('arch')!r} must be one of {ARCHS}")
            kwargs = {k: v for k, v in spec.items() if k not in ("source", "arch", "seed")}
            try:
                model = build_tiny(spec["arch"], seed=spec.get("seed", 0), **kwargs)
            except TypeError as e:
                raise ConfigError(f"base spec: {e}") from None
            return _finish(model, byte_tokenizer())
        key = "name" if source == "hub" else "path"
        if not spec.get(key) and not spec.get("path"):
            raise ConfigError(f"base spec: source {source!r} needs {key!r}")
        return load_base(spec.get(key) or spec.get("path"), dtype)
    path = Path(str(spec))
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        if (path / "config.json").is_file():
            config = AutoConfig.from_pretrained(path)
            model = _model_class(config).from_pretrained(path, dtype=dtype)
            return _finish(model, AutoTokenizer.from_pretrained(path))
        if ggufs:
            name = ggufs[0].name
            model = AutoModelForCausalLM.from_pretrained(path, gguf_file=name, dtype=dtype)
            return _finish(model, AutoTokenizer.from_pretrained(path, gguf_file=name))
        raise ConfigError(f"{path}: base model folder holds neither config.json nor a .gguf file")
    if path.suffix == ".gguf" or path.is_file():
        if not path.is_file():
            raise ConfigError(f"{path}: GGUF file not found (run `orchmoe fetch-smollm2 --out {path.parent}`)")
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype)
        return _finish(model, AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name))
    if str(spec).startswith((".", "/")) or "/" not in str(spec):
        raise ConfigError(f"base model {str(spec)!r}: no such folder, and not a hub id (owner/name)")
    config = AutoConfig.from_pretrained(str(spec))  # hub id: needs internet or the local HF cache
    model = _model_class(config).from_pretrained(str(spec), dtype=dtype)
    return _finish(model, AutoTokenizer.from_pretrained(str(spec)))
