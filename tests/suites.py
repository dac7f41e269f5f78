"""A small built-in suite sampled into a folder, as the workflow's data stage makes one (shared by test fixtures)."""
from __future__ import annotations

from pathlib import Path

from orchmoe.data.builtin import write_builtin_suite
from orchmoe.data.superni import sample_superni


def sampled_builtin_suite(root: Path, *, n_instances: int, max_tasks: int, n_train: int, n_eval: int = 2) -> Path:
    meta = write_builtin_suite(root / "raw", n_instances=n_instances, n_primitive_instances=4, max_tasks=max_tasks)
    sample_superni(root / "raw" / "tasks", root / "s", n_tasks="all", n_train=n_train, n_eval=n_eval, n_unseen=0,
                   task_domains=meta["domains"])
    return root / "s"
