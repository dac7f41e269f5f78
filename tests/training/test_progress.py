"""Logs of non-interactive jobs: one plain line per log_every training steps, evaluation progress, no bar redraws."""
from __future__ import annotations

import json
import re

from orchmoe.cli import main

from .conftest import FAST, TARGETS, tiny_spec


def test_training_and_evaluation_log_plain_progress_lines(tmp_path, suite, capsys):
    adapter = {"method": "lora", "target_modules": TARGETS["t5"], "rank": 2}
    train = {**FAST, "max_steps": 6, "log_every": 2}
    assert main(["train", "--base", tiny_spec("t5"), "--data", str(suite), "--adapter-config", json.dumps(adapter),
                 "--train-config", json.dumps(train), "--out", str(tmp_path / "ckpt"), "--work",
                 str(tmp_path / "work")]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err  # pytest's stderr is not a terminal: no tqdm redraws
    steps = re.findall(r"^train lora: (\d+)/6 \(\d+%\) [\d.]+s loss=[\d.]+$", err, flags=re.M)
    assert steps == ["2", "4", "6"]
    assert main(["evaluate", "--base", tiny_spec("t5"), "--checkpoint", str(tmp_path / "ckpt"), "--data", str(suite),
                 "--out", str(tmp_path / "eval"), "--batch-size", "2", "--max-source-length", "96",
                 "--max-target-length", "4"]) == 0
    err = capsys.readouterr().err
    done = re.findall(r"^evaluate eval: (\d+)/8 ", err, flags=re.M)
    assert done and done[-1] == "8" and "\r" not in err
