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

from . import baichuan, glm  # noqa: F401  register the GLM and Baichuan layouts with the Auto classes


def _model_class(config):
    # Remote-code models register their classes in auto_map: THUDM's GLM only as AutoModelForSeq2SeqLM.
    auto_map = getattr(config, "auto_map", None) or {}
    seq2seq_only = "AutoModelForSeq2SeqLM" in auto_map and "AutoModelForCausalLM" not in auto_map
    return AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) or seq2seq_only \
        else AutoModelForCausalLM


def _finish(model, tokenizer):
    if tokenizer.pad_token_id is None:  # decoder-only tokenizers often have no pad token
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.eval(), tokenizer


SOURCES = ("hub", "local", "gguf", "tiny", "path")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Keys of a workflow base entry that say how to adapt, count or schedule it, not how to load it.
NOT_LOADING = ("target_modules", "resources", "architecture", "pretrain")


def resolve_dtype(value) -> torch.dtype:
    """"auto" (the default): bfloat16 on CUDA (T5-XXL in fp32 is 44 GB), float32 on CPU (bf16 matmuls are slow there)."""
    if isinstance(value, torch.dtype):
        return value
    if value in (None, "auto"):
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    if value not in DTYPES:
        raise ConfigError(f"base spec: dtype={value!r} must be 'auto' or one of {', '.join(DTYPES)}")
    return DTYPES[value]


def hub_options(spec: dict) -> dict:
    """from_pretrained keywords of a spec: a revision pin, and remote code only when the spec opts in."""
    revision, remote = spec.get("revision"), spec.get("trust_remote_code", False)
    if revision is not None and not isinstance(revision, str):
        raise ConfigError(f"base spec: revision={revision!r} must be a string (branch, tag or commit)")
    if not isinstance(remote, bool):
        raise ConfigError(f"base spec: trust_remote_code={remote!r} must be true or false")
    return {**({"revision": revision} if revision else {}), **({"trust_remote_code": True} if remote else {})}


def load_base(spec: str | Path | dict, dtype: torch.dtype | str | None = None):
    """Returns (model, tokenizer) in eval mode.

    spec: a folder / .gguf file / hub id, or a dict {"source": "hub" | "local" | "path" | "gguf" | "tiny", ...}:
    hub -> "name"; local, path, gguf -> "path" (path: a folder or a hub id, as in the workflow config); tiny ->
    "arch" plus `tiny_config` keyword arguments and an optional "seed". Every source takes "dtype" ("auto",
    "float32", "bfloat16", "float16"); hub ids and folders also "revision" and "trust_remote_code" (default false:
    remote code runs only when the spec opts in). `dtype=` overrides the spec's."""
    if isinstance(spec, dict):
        spec = {k: v for k, v in spec.items() if k not in NOT_LOADING}
        source = spec.get("source")
        if source not in SOURCES:
            raise ConfigError(f"base spec: source={source!r} must be one of {SOURCES}")
        dtype = resolve_dtype(dtype if dtype is not None else spec.get("dtype"))
        if source == "tiny":
            from .tiny import ARCHS, build_tiny, byte_tokenizer

            if spec.get("arch") not in ARCHS:
                raise ConfigError(f"base spec: arch={spec.get('arch')!r} must be one of {ARCHS}")
            kwargs = {k: v for k, v in spec.items() if k not in ("source", "arch", "seed", "dtype")}
            try:
                model = build_tiny(spec["arch"], seed=spec.get("seed", 0), **kwargs)
            except TypeError as e:
                raise ConfigError(f"base spec: {e}") from None
            return _finish(model.to(dtype), byte_tokenizer())
        key = "name" if source == "hub" else "path"
        if not spec.get(key) and not spec.get("path"):
            raise ConfigError(f"base spec: source {source!r} needs {key!r}")
        return _load_path(spec.get(key) or spec.get("path"), dtype, hub_options(spec))
    return _load_path(spec, resolve_dtype(dtype), {})


def _load_path(spec, dtype: torch.dtype, options: dict):
    path = Path(str(spec))
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        if (path / "config.json").is_file():
            remote = {k: v for k, v in options.items() if k == "trust_remote_code"}  # a folder is one revision
            config = AutoConfig.from_pretrained(path, **remote)
            model = _model_class(config).from_pretrained(path, dtype=dtype, **remote)
            return _finish(model, AutoTokenizer.from_pretrained(path, **remote))
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
    # hub id: needs internet or the local HF cache (the workflow fetches once with `orchmoe fetch-base`)
    config = AutoConfig.from_pretrained(str(spec), **options)
    model = _model_class(config).from_pretrained(str(spec), dtype=dtype, **options)
    return _finish(model, AutoTokenizer.from_pretrained(str(spec), **options))
