"""The code fingerprints come from the import graph (src/orchmoe/lineage.py): each command's files are what its
handler imports, so a metrics edit does not touch training and a trainer edit does not touch the data."""
from __future__ import annotations

import re

from orchmoe.lineage import SRC, command_files, fingerprint, script_files

from .helpers import REPO


def rel(command):
    return {p.relative_to(SRC).as_posix() for p in command_files(command)}


def test_each_command_runs_what_its_handler_imports():
    train, evaluate, tables, pretrain = rel("train"), rel("evaluate"), rel("tables"), rel("pretrain-base")
    assert {"orchmoe/training/trainer.py", "orchmoe/adapters/model.py", "orchmoe/data/batching.py"} <= train
    assert not any(f.startswith("orchmoe/metrics/") for f in train)  # metrics are evaluation's, not training's
    assert {"orchmoe/metrics/superni.py", "orchmoe/training/evaluate.py"} <= evaluate
    assert "orchmoe/training/trainer.py" not in evaluate | pretrain | rel("superni-sample")
    assert "orchmoe/report/figures.py" not in tables and "orchmoe/report/figures.py" in rel("figures")
    for files in (train, evaluate, tables):  # the entry point and the packages whose __init__ runs
        assert {"orchmoe/__init__.py", "orchmoe/cli.py"} <= files
    assert {p.name for p in script_files(REPO / "workflow/scripts/domain_subset.py")} >= {"domain_subset.py", "io.py"}


def test_fingerprint_changes_with_any_byte(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("x = 1\n")
    b.write_text("y = 2\n")
    before = fingerprint([a, b], tmp_path)
    b.write_text("y = 2  # comment\n")
    assert fingerprint([a, b], tmp_path) != before


def test_every_rule_that_runs_a_command_has_a_code_param():
    for smk in sorted((REPO / "workflow/rules").glob("*.smk")):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            name = block.split(":", 1)[0]
            if re.search(r"^    (shell|script):", block, flags=re.M):
                assert re.search(r"^        code=code\(", block, flags=re.M), f"{smk.name}: rule {name} has no code param"
