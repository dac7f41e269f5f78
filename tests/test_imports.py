"""Imports flow one way (issue 13): each module of src/orchmoe imports only from its own package or from a lower
layer of the list in docs/architecture.md ("Import order"), read from there so the doc and the check agree."""
from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "orchmoe"


def layers() -> dict[str, int]:
    doc = (REPO / "docs/architecture.md").read_text()
    block = re.search(r"<!-- import-layers -->(.*?)<!-- /import-layers -->", doc, flags=re.S).group(1)
    order = {}
    for line in block.strip().splitlines():
        m = re.match(r"(\d+)\. (.*)", line.strip())
        for name in re.findall(r"`([\w.]+)`", m.group(2)):
            order[name] = int(m.group(1))
    return order


def unit(module: str) -> str:
    """orchmoe.data.superni -> data; orchmoe.io -> io (the first component below the package)."""
    return module.split(".")[1] if "." in module else module


def imports(path: Path, src: Path) -> set[str]:
    """`orchmoe.*` modules a file imports (relative imports resolved), function-level ones included."""
    parts = list(path.relative_to(src.parent).with_suffix("").parts)  # ["orchmoe", "data", "superni"]
    package = parts[:-1]  # for __init__.py, parts[:-1] is the package itself
    found = set()
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, ast.Import):
            found.update(a.name for a in n.names)
        elif isinstance(n, ast.ImportFrom):
            base = package[: len(package) - n.level + 1] if n.level else []
            found.add(".".join(base + ([n.module] if n.module else [])) if n.level else (n.module or ""))
    return {m for m in found if m.startswith("orchmoe.")}


def violations(src: Path) -> list[str]:
    order = layers()
    bad = []
    for path in sorted(src.rglob("*.py")):
        here = path.relative_to(src).parts[0].removesuffix(".py")
        if here == "__init__":
            continue
        for target in sorted(imports(path, src)):
            there = unit(target)
            if there != here and order[there] >= order[here]:
                bad.append(f"{path.relative_to(src.parent)} imports {target} (layer {order[there]} >= {order[here]})")
    return bad


def test_layers_cover_every_module_and_package():
    order = layers()
    names = {p.stem for p in SRC.glob("*.py")} | {p.name for p in SRC.iterdir() if (p / "__init__.py").is_file()}
    assert names - {"__init__"} <= set(order), f"not in docs/architecture.md's import order: {names - set(order)}"


def test_no_upward_or_sideways_import():
    bad = violations(SRC)
    assert not bad, "\n".join(bad)


def test_the_check_can_fail(tmp_path):
    """A data module importing training, and a relative sideways import from metrics into data, are reported."""
    fake = tmp_path / "orchmoe"
    (fake / "data").mkdir(parents=True)
    (fake / "metrics").mkdir()
    (fake / "data" / "x.py").write_text("def f():\n    from orchmoe.training.trainer import train\n")
    (fake / "metrics" / "y.py").write_text("from ..data.batching import make_collator\n")
    assert violations(fake) == ["orchmoe/data/x.py imports orchmoe.training.trainer (layer 7 >= 4)",
                                "orchmoe/metrics/y.py imports orchmoe.data.batching (layer 4 >= 4)"]


def test_the_command_line_starts_without_torch():
    """Every `orchmoe` job parses its command line first: that must not cost the torch + transformers import
    (seconds per job, hundreds of jobs per DAG); handlers import what they need."""
    import subprocess
    import sys

    code = ("import sys; from orchmoe.cli import build_parser; build_parser(); "
            "heavy = sorted(m for m in ('torch', 'transformers', 'pandas', 'matplotlib') if m in sys.modules); "
            "print(heavy); sys.exit(bool(heavy))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, f"building the parser imported {proc.stdout.strip()} {proc.stderr[-500:]}"
