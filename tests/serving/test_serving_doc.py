"""docs/serving.md's decoder-only PEFT block, run as written on a tiny Llama run: every generation of the run itself."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from orchmoe.cli import main
from orchmoe.io import read_jsonl
from orchmoe.models.loading import load_base
from orchmoe.models.tiny import build_tiny, byte_tokenizer
from orchmoe.serving.runs import open_run

from .test_export_claims import suite2  # noqa: F401 (fixture)

peft = pytest.importorskip("peft")
DOC = Path(__file__).resolve().parents[2] / "docs" / "serving.md"


def _doc_block() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    found = [b for b in blocks if "AutoModelForCausalLM" in b]
    assert len(found) == 1, "docs/serving.md: one decoder-only Python block expected"
    return found[0]


def _run_doc(code: str, adapter: Path, prompts: list[str]) -> list[str]:
    code = re.sub(r"^ADAPTER = .*$", lambda _: f"ADAPTER = {str(adapter)!r}", code, count=1, flags=re.M)
    code = re.sub(r"^PROMPTS = .*$", lambda _: f"PROMPTS = {prompts!r}", code, count=1, flags=re.M)
    printed = []
    exec(compile(code, str(DOC), "exec"), {"print": lambda *a: printed.append(" ".join(map(str, a)))})
    return printed


def test_decoder_only_recipe_reproduces_the_runs_generations(tmp_path, suite2, monkeypatch):  # noqa: F811
    monkeypatch.chdir(tmp_path)  # the base is given relative to here, as a workflow gives models/...
    build_tiny("llama").save_pretrained("base")
    byte_tokenizer().save_pretrained("base")
    adapter = json.dumps({"method": "lora", "target_modules": ["q_proj", "v_proj"], "rank": 2})
    train = json.dumps({"lr": 1e-2, "batch_size": 4, "max_steps": 2, "max_source_length": 96})
    assert main(["train", "--base", "base", "--data", str(suite2), "--adapter-config", adapter, "--train-config",
                 train, "--out", "run", "--work", "work"]) == 0
    weights = load_file("run/orchmoe_adapter.safetensors")  # 2 steps change little: make the LoRA's effect visible
    save_file({k: v * (20 if "lora_B" in k else 1) for k, v in weights.items()}, "run/orchmoe_adapter.safetensors")
    assert main(["export", "run", "--out", "exports/lora"]) == 0
    config = json.loads(Path("exports/lora/adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tmp_path / "base")  # absolute: it loads from anywhere

    run = open_run("run")
    records = read_jsonl(suite2 / "eval.jsonl")
    expected, plain, bare = [], [], load_base("base")[0]
    for r in records:  # the run's own greedy generation, one prompt at a time, and the bare base's
        batch = run.collate([r])
        routing = {k: batch.pop(k) for k in ("task_ids", "domain_ids", "prompt_mask")}
        out = run.model.generate(**batch, **routing, max_new_tokens=16, do_sample=False)
        expected.append(run.tokenizer.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True).strip())
        out = bare.generate(**batch, max_new_tokens=16, do_sample=False)
        plain.append(run.tokenizer.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True).strip())
    assert len(set(expected)) > 1 and expected != plain  # the generations depend on the prompt and on the LoRA

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code = _doc_block()
    prompts = [r["prompt"] for r in records]
    assert _run_doc(code, tmp_path / "exports" / "lora", prompts) == expected
    # the tokenization the doc warns about (the tokenizer's own special tokens: '</s>' after the prompt) does not
    wrong = _run_doc(code.replace("add_special_tokens=False", "add_special_tokens=True"), tmp_path / "exports" /
                     "lora", prompts)
    assert wrong != expected
