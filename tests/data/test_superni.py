"""The Super-NI reader and sampler on the real sample, determinism, the short-task policy, bad inputs."""
from __future__ import annotations

import json

import pytest

from orchmoe.data.superni import read_suite, read_task, sample_superni, split_short_task
from orchmoe.errors import DataError
from orchmoe.io import read_jsonl


def test_reads_every_real_task_file(superni_sample_dir):
    files = sorted(superni_sample_dir.glob("task*.json"))
    assert len(files) == 24
    for f in files:
        task = read_task(f)
        assert task.definition and task.instances
        assert all(inst["output"] for inst in task.instances)


def test_sampling_is_deterministic_disjoint_and_leak_free(superni_sample_dir, tmp_path):
    a = sample_superni(superni_sample_dir, tmp_path / "a", n_tasks=10, n_train=60, n_eval=20, n_unseen=5,
                       n_unseen_eval=30, seed=3)
    sample_superni(superni_sample_dir, tmp_path / "b", n_tasks=10, n_train=60, n_eval=20, n_unseen=5,
                   n_unseen_eval=30, seed=3)
    for name in ("train.jsonl", "eval.jsonl", "unseen.jsonl", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    train, evaluation = read_jsonl(tmp_path / "a" / "train.jsonl"), read_jsonl(tmp_path / "a" / "eval.jsonl")
    assert not {r["id"] for r in train} & {r["id"] for r in evaluation}
    assert set(a["tasks"]).isdisjoint(a["unseen_tasks"]) and len(a["unseen_tasks"]) == 5
    for row in train + evaluation:
        assert row["task"] not in row["prompt"] and row["prompt"].endswith("Output:")
        assert row["task_id"] == a["tasks"].index(row["task"]) and row["target"] == row["references"][0]
    assert all(r["task_id"] == -1 for r in read_jsonl(tmp_path / "a" / "unseen.jsonl"))
    other = sample_superni(superni_sample_dir, tmp_path / "c", n_tasks=10, n_train=60, n_eval=20, n_unseen=5,
                           n_unseen_eval=30, seed=4)
    assert other["tasks"] != a["tasks"]
    assert set(a["sources"]) == set(a["tasks"]) | set(a["unseen_tasks"])


def test_short_tasks_follow_the_stated_policy(superni_sample_dir, tmp_path):
    m = sample_superni(superni_sample_dir, tmp_path / "s", n_tasks=4, n_train=1000, n_eval=100, n_unseen=0, seed=0)
    assert len(m["short_tasks"]) == 4
    for info in m["short_tasks"].values():
        assert info["train"] + info["eval"] == info["instances"] and info["eval"] >= 1
    assert split_short_task(100, 1000, 100) == (90, 10)
    assert split_short_task(2000, 1000, 100) == (1000, 100)
    with pytest.raises(DataError, match="strict"):
        sample_superni(superni_sample_dir, tmp_path / "t", n_tasks=4, n_train=1000, n_eval=100, n_unseen=0,
                       strict=True)
    assert not (tmp_path / "t" / "manifest.json").exists()


@pytest.mark.parametrize("content, field", [
    ("{not json", "not valid JSON"),
    (json.dumps({"Instances": [{"id": "1", "input": "x", "output": ["y"]}]}), "Definition"),
    (json.dumps({"Definition": ["d"], "Instances": []}), "Instances"),
    (json.dumps({"Definition": ["d"], "Instances": [{"id": "1", "input": "x", "output": []}]}), "output"),
])
def test_bad_task_files_name_file_and_field(tmp_path, content, field):
    bad = tmp_path / "tasks" / "task001_bad.json"
    bad.parent.mkdir()
    bad.write_text(content)
    with pytest.raises(DataError, match=field) as e:
        sample_superni(bad.parent, tmp_path / "out", n_tasks=1, n_unseen=0)
    assert "task001_bad.json" in str(e.value)
    assert not (tmp_path / "out").exists()


def test_empty_and_missing_folders_and_bad_sizes(tmp_path, superni_sample_dir):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no task"):
        sample_superni(tmp_path / "empty", tmp_path / "o", n_tasks=1)
    with pytest.raises(DataError, match="not found"):
        sample_superni(tmp_path / "missing", tmp_path / "o", n_tasks=1)
    with pytest.raises(DataError, match="n_train=0"):
        sample_superni(superni_sample_dir, tmp_path / "o", n_tasks=2, n_train=0)
    with pytest.raises(DataError, match="n_tasks=99"):
        sample_superni(superni_sample_dir, tmp_path / "o", n_tasks=99)
    with pytest.raises(DataError, match="manifest.json missing"):
        read_suite(tmp_path / "o")


def test_manifest_ids_positive_examples_and_cli(superni_sample_dir, tmp_path):
    from orchmoe.cli import main

    assert main(["superni-sample", "--tasks-dir", str(superni_sample_dir), "--out", str(tmp_path / "s"),
                 "--n-tasks", "3", "--n-train", "20", "--n-eval", "5", "--n-unseen", "2", "--n-unseen-eval", "7",
                 "--num-pos-examples", "1", "--seed", "9"]) == 0
    m = read_suite(tmp_path / "s")
    for split in ("train", "eval", "unseen"):
        rows = read_jsonl(tmp_path / "s" / f"{split}.jsonl")
        assert sum(len(v) for v in m["instance_ids"][split].values()) == len(rows) == m["counts"][split]
        assert [r["id"] for r in rows] == [i for t in m["instance_ids"][split].values() for i in t]
    row = read_jsonl(tmp_path / "s" / "train.jsonl")[0]
    task = read_task(superni_sample_dir / f"{row['task']}.json")
    assert row["prompt"].startswith(f"Definition: {task.definition.strip()}")
    assert "Positive Example 1 -\nInput: " + task.positive_examples[0]["input"].strip() in row["prompt"]
    # unseen tasks: first n instances in file order, the same for every seed (mttl)
    for name, ids in m["instance_ids"]["unseen"].items():
        assert ids == [i["id"] for i in read_task(superni_sample_dir / f"{name}.json").instances[:7]]
    assert main(["superni-sample", "--tasks-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x"),
                 "--n-tasks", "1"]) == 2


def test_instance_without_string_input_is_named(tmp_path):
    bad = tmp_path / "tasks" / "task002_noinput.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps({"Definition": ["d"], "Instances": [{"id": "a-1", "output": ["y"]}]}))
    with pytest.raises(DataError, match=r"task002_noinput.json: Instances\[0\] \(id 'a-1'\) has no string 'input'"):
        read_task(bad)
