"""Sampler: metadata without instances, official split files, prompt formats, non-UTF-8 files, short unseen tasks."""
from __future__ import annotations

import json
import logging

import pytest

from orchmoe.cli import main
from orchmoe.data.superni import read_task_meta, sample_superni
from orchmoe.errors import DataError
from orchmoe.io import read_jsonl


def task(n=8, lang="English", prefix="x"):
    return {"Definition": ["Copy the input"], "Positive Examples": [{"input": "ab", "output": "ab"}],
            "Input_language": [lang], "Output_language": [lang],
            "Instances": [{"id": f"{prefix}-{i}", "input": f"w{i}", "output": [f"w{i}"]} for i in range(n)]}


def write(folder, tasks):
    folder.mkdir(parents=True, exist_ok=True)
    for name, t in tasks.items():
        (folder / f"{name}.json").write_text(t if isinstance(t, str) else json.dumps(t))
    return folder


def test_metadata_is_read_without_parsing_the_instances(tmp_path):
    text = json.dumps({k: v for k, v in task().items() if k != "Instances"})[:-1] + ', "Instances": [not json'
    (tmp_path / "t.json").write_text(text)
    assert read_task_meta(tmp_path / "t.json") == {"Input_language": ["English"], "Output_language": ["English"]}
    first = {"Instances": task()["Instances"], "Input_language": ["German"], "Output_language": ["English"]}
    (tmp_path / "u.json").write_text(json.dumps(first))  # instances first: read whole, same answer
    assert read_task_meta(tmp_path / "u.json")["Input_language"] == ["German"]


def test_english_only_split_file_and_prompt_format(tmp_path):
    tasks = write(tmp_path / "tasks", {"task001_a": task(prefix="a"), "task002_b": task(prefix="b"),
                                       "task003_de": task(lang="German", prefix="c"), "task004_d": task(prefix="d")})
    split = tmp_path / "test_tasks.txt"
    split.write_text("task001_a\ntask003_de\ntask004_d\ntask999_missing\n")
    m = sample_superni(tasks, tmp_path / "s", n_tasks="all", n_train=4, n_eval=2, n_unseen=0, english_only=True,
                       split_file=split, num_pos_examples=1, prompt_format="tk_instruct")
    assert m["tasks"] == ["task001_a", "task004_d"] and m["params"]["prompt_format"] == "tk_instruct"
    rows = read_jsonl(tmp_path / "s" / "train.jsonl")
    assert rows[0]["prompt"].startswith("Definition: Copy the input.\n\n Positive Example 1 -\nInput: ab.\n")
    assert all(r["task"] not in r["prompt"] for r in rows)
    with pytest.raises(DataError, match="no_such.txt: split file not found"):
        sample_superni(tasks, tmp_path / "t", n_tasks=1, split_file=tmp_path / "no_such.txt")
    assert not (tmp_path / "t").exists()


def test_non_utf8_task_file_is_one_line_naming_it(tmp_path, capsys):
    tasks = write(tmp_path / "tasks", {"task001_a": task()})
    (tasks / "task002_latin1.json").write_bytes(json.dumps(task()).replace("Copy", "Copi\u00e9").encode("latin-1"))
    assert main(["superni-sample", "--tasks-dir", str(tasks), "--out", str(tmp_path / "out"), "--n-tasks", "all",
                 "--n-train", "4", "--n-eval", "2", "--n-unseen", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{tasks}/task002_latin1.json: not UTF-8 text" in err
    assert not (tmp_path / "out").exists()


def test_short_unseen_tasks_warn_like_seen_ones(tmp_path, caplog):
    tasks = write(tmp_path / "tasks", {"task001_a": task(n=8), "task002_short": task(n=3, prefix="s")})
    with caplog.at_level(logging.WARNING):
        m = sample_superni(tasks, tmp_path / "s", n_tasks=1, n_train=4, n_eval=2, n_unseen=1, n_unseen_eval=5,
                           seed=1)
    short = [t for t in ("task001_a", "task002_short") if t in m["unseen_tasks"]][0]
    assert short in m["short_tasks"]
    assert any(rec.getMessage().startswith(f"{short}: ") and "< 5 requested" in rec.getMessage()
               for rec in caplog.records)
