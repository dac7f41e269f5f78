"""Atomic writes and file hashing.

Every artifact is written to a temporary sibling and renamed into place, so a job killed
half-way never leaves a file that looks complete (Snakemake and DVC only look at names).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from orchmoe.errors import ConfigError, DataError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds.

    Works for files and directories (the caller decides what it writes at the temporary path).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    return write_text(path, "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows))


def read_text(path: str | os.PathLike) -> str:
    """A UTF-8 text file; DataError naming the file (and the byte) when it is not UTF-8."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start}: {e.object[e.start:e.start + 1]!r})") from None


def read_json(path: str | os.PathLike) -> Any:
    """A JSON file; DataError naming the file and line when it is not UTF-8 or not JSON."""
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """One JSON value per line; DataError naming the file and line of the first malformed one."""
    rows = []
    for i, line in enumerate(read_text(path).splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{i}: not valid JSON ({e.msg})") from None
    return rows


def md5_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def md5_tree(path: str | os.PathLike) -> dict[str, str]:
    """Relative path -> md5 of every file under a directory, in the order md5_path hashes them."""
    path = Path(path)
    return {p.relative_to(path).as_posix(): md5_file(p) for p in sorted(q for q in path.rglob("*") if q.is_file())}


def md5_of_tree(files: dict[str, str]) -> str:
    """A directory's md5 from its md5_tree: the md5 of its sorted (relative path, file md5) list."""
    h = hashlib.md5()
    for name, md5 in files.items():
        h.update(f"{name}\0{md5}\n".encode())
    return h.hexdigest()


def md5_path(path: str | os.PathLike) -> str:
    """md5 of a file, or of a directory as the md5 of its sorted (relative path, file md5) list."""
    path = Path(path)
    return md5_file(path) if path.is_file() else md5_of_tree(md5_tree(path))


def json_or_file(value: str) -> dict:
    """A JSON object given inline or as a path to a .json / .yaml file."""
    path = Path(value)
    if not value.lstrip().startswith("{") and path.is_file():
        import yaml

        try:
            data = yaml.safe_load(read_text(path))
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML/JSON ({str(e).splitlines()[0]})") from None
    else:
        try:
            data = json.loads(value)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{value!r}: neither a file nor a JSON object ({e.msg})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{value!r}: must be a JSON/YAML object")
    return data
