"""A training run opened for export and routing: base model + adapters, tokenizer, suite manifest, prompts."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from orchmoe.errors import ConfigError
from orchmoe.io import md5_file, read_jsonl


@dataclass
class Run:
    path: Path
    model: object  # MultiAdapterModel, eval mode
    tokenizer: object
    record: dict  # run.json
    data: Path | None  # the suite the run trained on
    manifest: dict
    base: str  # the base model as given (--base) or recorded in run.json

    @property
    def method(self) -> str:
        return self.model.cfg.method

    def provenance(self) -> dict:
        from orchmoe.adapters.model import CONFIG_NAME, WEIGHTS_NAME

        files = {n: md5_file(self.path / n) for n in (CONFIG_NAME, WEIGHTS_NAME, "run.json") if (self.path / n).is_file()}
        return {"run": str(self.path.resolve()), "method": self.method, "base": self.base, "base_md5": self.base_md5(),
                "run_files": files, "git": self.record.get("git")}

    def base_md5(self) -> str:
        """The base as run.json records it: the md5 of its folder (of a fetched folder's fetch.json), or, for a hub
        id or a tiny-model spec, of the spec itself. The recorded md5 for the recorded base (a multi-GB folder is
        not hashed again by every export and route; `orchmoe trace --verify` checks the folder itself)."""
        import hashlib

        from orchmoe.io import md5_path
        from orchmoe.training.cli import base_input, base_spec

        recorded = self.record.get("inputs", {}).get("base", {}).get("md5")
        if recorded and self.base == self.record.get("config", {}).get("base"):
            return recorded
        found = base_input(self.base)
        if found is not None:
            return md5_path(found)
        spec = base_spec(self.base)
        text = json.dumps(spec, sort_keys=True) if isinstance(spec, dict) else str(spec)
        return hashlib.md5(text.encode()).hexdigest()

    def collate(self, records: list[dict]) -> dict:
        from orchmoe.data.batching import make_collator
        from orchmoe.data.glm_format import input_format

        max_len = self.record.get("config", {}).get("train", {}).get("max_source_length", 512)
        return make_collator(self.tokenizer, self.model.is_encoder_decoder, max_len, 8, "generate",
                             input_format(self.model.base_model.config))(records)

    @torch.no_grad()
    def routing(self, prompts: list[str], batch_size: int = 32) -> tuple[dict, list]:
        """Per-prompt routing weights {group: (N, S)} and the MoA predicted domain per prompt (majority of blocks,
        as `orchmoe evaluate` counts it; None for other methods)."""
        from orchmoe.adapters.export import prompt_routing

        weights, domains = {}, []
        for k in range(0, len(prompts), batch_size):
            batch = self.collate([{"prompt": p} for p in prompts[k:k + batch_size]])
            w, readout = prompt_routing(self.model, batch)
            for g, v in w.items():
                weights.setdefault(g, []).append(v)
            votes = [v["predicted_domain"] for v in readout.values() if "predicted_domain" in v]
            domains += torch.stack(votes).mode(dim=0).values.tolist() if votes else [None] * len(w[next(iter(w))])
        return {g: torch.cat(v) for g, v in weights.items()}, domains

    def task_prompts(self, split: str, max_prompts: int) -> tuple[dict, Path]:
        """{task name: its first max_prompts prompts in the suite split}."""
        if self.data is None:
            raise ConfigError(f"{self.path}/run.json names no suite: pass --data")
        file = self.data / f"{split}.jsonl"
        if not file.is_file():
            raise ConfigError(f"{file}: suite split not found (pass --data / --split)")
        prompts = {t: [] for t in self.manifest["tasks"]}
        for r in read_jsonl(file):
            if r["task"] in prompts and len(prompts[r["task"]]) < max_prompts:
                prompts[r["task"]].append(r["prompt"])
        return prompts, file


def require_run(path: Path) -> Path:
    """The run's run.json; one line if `path` is not a training run."""
    run_json = Path(path) / "run.json"
    if not run_json.is_file():
        raise ConfigError(f"{path}: not a training run (run.json missing)")
    return run_json


def open_run(path, base: str | None = None, data: str | None = None) -> Run:
    from orchmoe.adapters import load_adapters
    from orchmoe.data.superni import read_suite
    from orchmoe.models.loading import load_base
    from orchmoe.training.cli import base_spec

    path = Path(path)
    run_json = require_run(path)
    record = json.loads(run_json.read_text())
    base = base or record.get("config", {}).get("base")
    if not base:
        raise ConfigError(f"{run_json}: no base model recorded: pass --base")
    data = data or record.get("inputs", {}).get("data", {}).get("path")
    data = Path(data) if data else None
    manifest = read_suite(data) if data else {"tasks": [], "domains": []}
    model, tokenizer = load_base(base_spec(base))
    try:
        model = load_adapters(model, path).eval()
    except (RuntimeError, KeyError, ValueError, AttributeError) as e:  # e.g. a --base of another architecture
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{path}: its adapters do not fit base {base!r} ({first[:200]})") from None
    return Run(path, model, tokenizer, record, data, manifest, base)
