"""MoA domain data: real `datasets.load_dataset` on small local files in each schema, labels, errors."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from orchmoe.data.domains import read_domain_table, sample_domains
from orchmoe.errors import DataError
from orchmoe.io import read_jsonl

from ..conftest import REPO


def _files(root):
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "fin.jsonl", "w") as f:
        for i in range(30):
            f.write(json.dumps({"instruction": f"Explain term {i}.", "input": "", "output": f"meaning {i}"}) + "\n")
        f.write(json.dumps({"instruction": "Empty one.", "input": "", "output": ""}) + "\n")  # dropped, counted
    pd.DataFrame({"question": [f"symptom {i}?" for i in range(12)], "answer": [f"advice {i}" for i in range(12)]}
                 ).to_csv(root / "med.csv", index=False)
    pd.DataFrame({"instruction": ["考试题"] * 20, "input": [f"题目 {i}" for i in range(20)],
                  "output": [[f"答案 {i}", "other"] for i in range(20)]}).to_parquet(root / "exam.parquet")
    json.dump([{"input": f"The conversation.\n[|Human|] how do I {i}?\n[|AI|] like this {i}.\n[|Human|] thanks"}
               for i in range(25)], open(root / "so.json", "w"))
    table = {"domains": {
        "finance": {"source": str(root / "fin.jsonl"), "fields": {"instruction": "instruction", "input": "input",
                                                                   "output": "output"}},
        "medicine": {"source": str(root / "med.csv"), "fields": {"input": "question", "output": "answer"},
                     "definition": "Answer as a doctor."},
        "exam": {"source": str(root / "exam.parquet"), "language": "zh",
                 "fields": {"instruction": "instruction", "input": "input", "output": "output"}},
        "stackoverflow": {"source": str(root / "so.json"), "format": "dialog",
                          "dialog": {"field": "input", "user": "[|Human|]", "assistant": "[|AI|]"}},
    }}
    (root / "domains.yaml").write_text(yaml.safe_dump(table, sort_keys=False))
    return root / "domains.yaml"


def test_domains_load_label_and_are_deterministic(tmp_path):
    table = _files(tmp_path / "raw")
    m = sample_domains(table, tmp_path / "a", n_train=10, n_eval=5, seed=1)
    sample_domains(table, tmp_path / "b", n_train=10, n_eval=5, seed=1)
    for name in ("train.jsonl", "eval.jsonl", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert m["domains"] == ["finance", "medicine", "exam", "stackoverflow"] == m["tasks"]
    assert m["dropped_empty"] == {"finance": 1} and set(m["short_tasks"]) == {"medicine"}
    assert m["short_tasks"]["medicine"] == {"instances": 12, "train": 8, "eval": 4}
    train, ev = read_jsonl(tmp_path / "a" / "train.jsonl"), read_jsonl(tmp_path / "a" / "eval.jsonl")
    assert not {r["id"] for r in train} & {r["id"] for r in ev}
    for r in train + ev:
        assert m["domains"][r["domain_id"]] == r["domain"] == r["task"] and r["task_id"] == r["domain_id"]
        assert r["prompt"].startswith("Definition: ") and r["prompt"].endswith("Output:") and r["target"]
    by = {r["domain"]: r for r in train}
    assert by["medicine"]["prompt"].startswith("Definition: Answer as a doctor.\n\nInput: symptom")
    assert by["exam"]["target"].startswith("答案") and by["exam"]["references"] == [by["exam"]["target"]]
    so = by["stackoverflow"]
    assert so["target"].startswith("like this") and "how do I" in so["prompt"] and "thanks" not in so["prompt"]
    assert len(m["sources"]) == 4 and all(len(v) == 32 for v in m["sources"].values())
    assert sample_domains(table, tmp_path / "c", n_train=10, n_eval=5, seed=2)["instance_ids"] != m["instance_ids"]


def test_domain_errors_name_the_dataset_and_field(tmp_path, monkeypatch):
    table = _files(tmp_path / "raw")
    with pytest.raises(DataError, match=r"unknown domain\(s\) \['law'\]"):
        sample_domains(table, tmp_path / "o", domains=["finance", "law"])
    with pytest.raises(DataError, match="strict"):
        sample_domains(table, tmp_path / "o", n_train=10, n_eval=5, domains=["medicine"], strict=True)
    with pytest.raises(DataError, match="n_eval=0"):
        sample_domains(table, tmp_path / "o", n_eval=0)
    spec = yaml.safe_load(table.read_text())
    spec["domains"]["medicine"]["fields"]["output"] = "reply"
    spec["domains"]["finance"]["source"] = str(tmp_path / "raw" / "gone.jsonl")
    table.write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(DataError, match="gone.jsonl not found"):
        sample_domains(table, tmp_path / "o", domains=["finance"])
    with pytest.raises(DataError, match=r"medicine.*column 'reply' not in the data"):
        sample_domains(table, tmp_path / "o", domains=["medicine"])
    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    spec["domains"]["finance"] = {"source": "nobody/missing-domain", "fields": {"input": "a", "output": "b"}}
    table.write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(DataError, match="nobody/missing-domain.*huggingface-cli download.*data/raw/domains/finance"):
        sample_domains(table, tmp_path / "o", domains=["finance"])
    assert not (tmp_path / "o").exists()  # nothing partial written
    table.write_text("domains:\n  x: {source: a.jsonl, fields: {output: o}}\n")
    with pytest.raises(DataError, match="domains.x.fields"):
        read_domain_table(table)


def test_project_domain_table_has_the_eight_moa_domains():
    table = read_domain_table(REPO / "config" / "domains.yaml")
    assert list(table) == ["finance", "medicine", "leetcode", "exam", "webgpt", "gpt4tools", "cot", "stackoverflow"]
    assert {t["language"] for t in table.values()} == {"en", "zh"}
