"""Base specs: dtype, revision and opt-in remote code; `orchmoe fetch-base`; the GLM layout twin loads like any base."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from orchmoe.cli import main
from orchmoe.errors import ConfigError
from orchmoe.models import fetch as fetch_mod
from orchmoe.models import loading
from orchmoe.models.loading import hub_options, load_base, resolve_dtype
from orchmoe.models.tiny import build_tiny, byte_tokenizer


def test_dtype_auto_is_fp32_on_cpu_and_names_are_checked(monkeypatch):
    assert resolve_dtype("auto") == resolve_dtype(None) == torch.float32
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_dtype("auto") == torch.bfloat16
    assert resolve_dtype("float16") == torch.float16
    with pytest.raises(ConfigError, match="dtype='fp8'"):
        resolve_dtype("fp8")
    model, _ = load_base({"source": "tiny", "arch": "llama", "dtype": "bfloat16"})
    assert next(model.parameters()).dtype == torch.bfloat16


def test_remote_code_only_when_opted_in():
    assert hub_options({"path": "a/b"}) == {}
    assert hub_options({"revision": "abc123", "trust_remote_code": True}) == {"revision": "abc123",
                                                                            "trust_remote_code": True}
    with pytest.raises(ConfigError, match="trust_remote_code='yes'"):
        hub_options({"trust_remote_code": "yes"})


def test_hub_spec_passes_revision_and_remote_code(monkeypatch):
    seen = []

    def fake(kind):
        def from_pretrained(name, **kw):
            seen.append((kind, name, kw))
            if kind == "config":
                return build_tiny("llama").config
            return build_tiny("llama") if kind == "model" else byte_tokenizer()
        return type(kind, (), {"from_pretrained": staticmethod(from_pretrained)})

    monkeypatch.setattr(loading, "AutoConfig", fake("config"))
    monkeypatch.setattr(loading, "AutoModelForCausalLM", fake("model"))
    monkeypatch.setattr(loading, "AutoTokenizer", fake("tokenizer"))
    # the hub's first answer: offline with the id in the HF cache (an unreachable hub: tests/test_bad_inputs.py)
    monkeypatch.setattr(loading, "hub_access", lambda repo_id, revision: {"local_files_only": True})
    load_base({"source": "path", "path": "THUDM/glm-10b", "revision": "r1", "trust_remote_code": True,
               "dtype": "float32", "target_modules": ["x"], "architecture": "glm-10b"})
    assert [s[0] for s in seen] == ["config", "model", "tokenizer"]
    assert all(s[1] == "THUDM/glm-10b" and s[2]["revision"] == "r1" and s[2]["trust_remote_code"]
               and s[2]["local_files_only"] for s in seen)
    assert seen[1][2]["dtype"] == torch.float32


def _model_dir(path):
    model = build_tiny("glm", d_model=32)
    model.save_pretrained(path)
    byte_tokenizer().save_pretrained(path)
    return model


def test_glm_twin_saves_and_loads_as_an_ordinary_folder(tmp_path):
    model = _model_dir(tmp_path / "glm")
    again, _ = load_base({"source": "local", "path": str(tmp_path / "glm")})
    ids = torch.tensor([[5, 6, 7, 1]])
    assert type(again).__name__ == "GLMLayoutForCausalLM"
    assert torch.equal(model(input_ids=ids).logits, again(input_ids=ids).logits)


def test_fetch_base_copies_once_with_md5_record(tmp_path, monkeypatch):
    _model_dir(tmp_path / "src")
    out = tmp_path / "models" / "exp" / "glm"
    assert main(["fetch-base", "--spec", json.dumps({"source": "path", "path": str(tmp_path / "src")}),
                 "--out", str(out)]) == 0
    record = json.loads((out / "fetch.json").read_text())
    assert record["hub_id"] == str(tmp_path / "src") and record["commit"] is None
    assert set(record["md5"]) == {p.name for p in (tmp_path / "src").iterdir()}
    load_base(out)

    calls = []

    def fake_download(repo_id, revision, dest):  # the hub, offline: a snapshot is a copy of a folder
        calls.append((repo_id, revision))
        shutil.copytree(tmp_path / "src", dest)
        (dest / ".cache").mkdir()
        return "0123abcd"

    monkeypatch.setattr(fetch_mod, "_download", fake_download)
    hub_out = tmp_path / "models" / "exp" / "hub"
    spec = {"path": "THUDM/glm-10b", "revision": "v1", "trust_remote_code": True}
    fetch_mod.fetch_base(spec, hub_out)
    fetch_mod.fetch_base(spec, hub_out)  # already there: no second download
    record = json.loads((hub_out / "fetch.json").read_text())
    assert calls == [("THUDM/glm-10b", "v1")]
    assert record == {"hub_id": "THUDM/glm-10b", "revision": "v1", "commit": "0123abcd", "trust_remote_code": True,
                      "md5": record["md5"]} and ".cache" not in {p.name for p in hub_out.iterdir()}
    assert [p.name for p in hub_out.parent.iterdir() if p.name.startswith(".")] == []  # no temporary leftovers


def test_fetch_base_refuses_what_it_cannot_fetch(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for spec, match in [({}, "needs 'path'"), ({"path": "nohub"}, "base folder not found: nohub"),
                        ({"path": str(tmp_path / "empty")}, "neither config.json"),
                        ({"path": str(tmp_path / "empty"), "revision": "v1"}, "needs a hub id")]:
        assert main(["fetch-base", "--spec", json.dumps(spec), "--out", str(tmp_path / "out")]) == 2
        assert match in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_pretrain_base_builds_the_glm_twin(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    rows = [{"id": str(i), "task": "copy", "task_id": 0, "domain": None, "domain_id": None,
             "prompt": f"copy {w}\nOutput:", "target": w, "references": [w]} for i, w in enumerate(["ab", "cd"])]
    (suite / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["pretrain-base", "--arch", "glm", "--data", str(suite), "--out", str(tmp_path / "glm"), "--steps",
                 "2", "--batch-size", "2", "--d-model", "32", "--d-ff", "128"]) == 0
    model, _ = load_base(tmp_path / "glm")
    assert model.config.model_type == "orchmoe_glm"
    assert main(["pretrain-base", "--arch", "glm", "--data", str(suite), "--out", str(tmp_path / "bad"),
                 "--d-model", "32", "--d-ff", "64"]) == 2


def test_remote_code_class_follows_auto_map():
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, PretrainedConfig

    glm = PretrainedConfig(auto_map={"AutoConfig": "configuration_glm.GLMConfig",
                                     "AutoModelForSeq2SeqLM": "modeling_glm.GLMForConditionalGeneration"})
    assert loading._model_class(glm) is AutoModelForSeq2SeqLM
    assert loading._model_class(build_tiny("glm").config) is AutoModelForCausalLM


def test_baichuan_twin_packs_qkv_and_equals_the_llama_it_was_built_from(tmp_path):
    """W_pack holds q | k | v of the same-seed LLaMA, so the outputs are the LLaMA's; save/load keeps W_pack."""
    packed, llama = build_tiny("baichuan", seed=2), build_tiny("llama", seed=2)
    names = {n for n, _ in packed.named_modules()}
    assert "model.layers.0.self_attn.W_pack" in names and "model.layers.0.self_attn.q_proj" not in names
    ids = torch.tensor([[5, 6, 7, 8, 1]])
    torch.testing.assert_close(packed(input_ids=ids).logits, llama(input_ids=ids).logits)
    packed.save_pretrained(tmp_path / "b")
    byte_tokenizer().save_pretrained(tmp_path / "b")
    again, _ = load_base(tmp_path / "b")
    assert torch.equal(again(input_ids=ids).logits, packed(input_ids=ids).logits)


def test_run_json_records_a_fetched_base_by_its_fetch_record(tmp_path):
    from orchmoe.training.cli import base_input

    _model_dir(tmp_path / "src")
    fetch_mod.fetch_base({"path": str(tmp_path / "src")}, tmp_path / "fetched")
    spec = json.dumps({"source": "path", "path": str(tmp_path / "fetched"), "trust_remote_code": True})
    assert base_input(spec) == base_input(str(tmp_path / "fetched")) == tmp_path / "fetched" / "fetch.json"
    assert base_input(str(tmp_path / "src")) == tmp_path / "src"
    assert base_input('{"source": "tiny", "arch": "glm"}') is None and base_input("THUDM/glm-10b") is None
