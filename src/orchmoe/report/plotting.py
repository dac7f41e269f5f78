"""Saving a figure: PNG + PDF, written atomically. Kept apart from figures.py so that the tables command,
which draws the router-diagnostics figure, does not depend on (and rerun with) every figure's code."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from orchmoe.io import atomic_path  # noqa: E402


def _save(fig, out: Path, name: str) -> None:
    for ext in ("png", "pdf"):
        with atomic_path(out / f"{name}.{ext}") as tmp:
            fig.savefig(tmp, format=ext, dpi=120, bbox_inches="tight")
    plt.close(fig)
