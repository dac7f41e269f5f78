"""Load a base model and its tokenizer from a Hugging Face hub id, a local directory, a GGUF file or a tiny config.

`load_base("path/to/dir")` decides by what the folder holds: config.json (an ordinary HF model directory, e.g. a
pretrained tiny demo base), or a *.gguf file (e.g. SmolLM2 extracted by `orchmoe fetch-smollm2`). A path that does
not exist is "base folder not found", unless it is spelled like a hub id (owner/name, and `owner` is no local
folder); a hub id needs the hub or the HF cache, and one the hub cannot serve fails in seconds naming the id.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

from orchmoe.errors import ConfigError
from orchmoe.paths import is_hub_id

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


HUB_TIMEOUT_S = 3  # one metadata request; transformers' own retries take ~40 s to give up offline


def hub_id(text: str) -> str:
    """`text` when it can only be a hub id (called once no file or folder `text` exists), else "base folder not
    found" (paths.is_hub_id says which)."""
    if not is_hub_id(text):
        hint = "" if "/" in text else " (a hub id is owner/name)"
        raise ConfigError(f"base folder not found: {text}{hint}")
    return text


def hub_access(repo_id: str, revision: str | None = None, use_cache: bool = True) -> dict:
    """Ask the hub for repo_id once, with a short timeout, so a bad id or no network is one line naming the id, not
    ~40 s of retries. Returns extra from_pretrained keywords: local_files_only when offline (HF_HUB_OFFLINE, or the
    hub unreachable) and the HF cache holds the repository (and use_cache allows it)."""
    from huggingface_hub import HfApi, constants, errors, try_to_load_from_cache

    cached = use_cache and isinstance(try_to_load_from_cache(repo_id, "config.json", revision=revision), str)
    where = f"base model {repo_id!r}" + (f" (revision {revision!r})" if revision else "")
    if constants.HF_HUB_OFFLINE:
        if cached:
            return {"local_files_only": True}
        held = f"not in the local hub cache ({constants.HF_HUB_CACHE})" if use_cache else "needs the hub"
        raise ConfigError(f"{where}: {held} and HF_HUB_OFFLINE is set")
    try:
        HfApi().model_info(repo_id, revision=revision, timeout=HUB_TIMEOUT_S)
    except errors.GatedRepoError:
        raise ConfigError(f"{where}: a gated hub repository (accept its terms and log in: `hf auth login`)") from None
    except errors.RepositoryNotFoundError:
        raise ConfigError(f"{where}: no such hub repository (or a private one: log in with `hf auth login`)") from None
    except errors.RevisionNotFoundError:
        raise ConfigError(f"{where}: the hub repository has no such revision") from None
    except (OSError, getattr(errors, "HTTPError", OSError)) as e:  # no network, DNS, timeout, hub down
        if cached:
            return {"local_files_only": True}
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConfigError(f"{where}: the hub ({constants.ENDPOINT}) is unreachable ({reason}) and the local hub "
                          "cache does not hold it") from None
    return {}


def _load_path(spec, dtype: torch.dtype, options: dict):
    path = Path(os.path.expanduser(str(spec)))  # the workflow passes config paths quoted: no shell expands ~
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
    # hub id: needs internet or the local HF cache (the workflow fetches once with `orchmoe fetch-base`)
    repo_id = hub_id(str(spec))
    options = {**options, **hub_access(repo_id, options.get("revision"))}
    config = AutoConfig.from_pretrained(repo_id, **options)
    model = _model_class(config).from_pretrained(repo_id, dtype=dtype, **options)
    return _finish(model, AutoTokenizer.from_pretrained(repo_id, **options))
