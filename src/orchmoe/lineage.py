"""Which source files an `orchmoe <command>` runs, from the import graph, and their fingerprint.

Snakemake (a `code` param on every rule: its params-change trigger reruns the job) and DVC (each stage's code
deps, written into dvc.yaml) both read this, so the two tools cannot disagree on which code change makes which
artifact stale. Nothing is typed by hand: the command's handler is found in its area's `register()`, and the
files are every `orchmoe` module reachable from the handler's imports (lazy, function-level imports included),
plus the packages' `__init__.py` files that importing them runs. Stdlib only: the Snakefile loads it by path.
"""
from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent  # the folder holding the `orchmoe` package
PACKAGE = "orchmoe"
# Packages whose modules are found at run time, not imported by name (adapters/registry.py imports every method
# file): reaching the package reaches all of its modules.
DISCOVERED = ("orchmoe.adapters.methods",)


def _parse(path: Path) -> ast.Module:
    return _parse_version(path, _version(path))


# Caches are keyed by the file's version (mtime, size): one process that plans several configs (the staleness test,
# the Snakemake API) parses each file once, and an edited file again.
@functools.lru_cache(maxsize=None)
def _parse_version(path: Path, version: tuple[int, int]) -> ast.Module:
    return ast.parse(path.read_bytes(), filename=str(path))


def _file(module: str, src: Path) -> Path | None:
    path = src.joinpath(*module.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def _module_name(path: Path, src: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(src).with_suffix("").parts)
    is_pkg = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_pkg else parts), is_pkg


def _imported(nodes, module: str, is_pkg: bool, src: Path) -> set[str]:
    """`orchmoe` modules imported anywhere inside `nodes` (relative imports resolved against `module`)."""
    found = set()
    for node in nodes:
        for n in ast.walk(node):
            if isinstance(n, ast.Import):
                found.update(a.name for a in n.names)
            elif isinstance(n, ast.ImportFrom):
                if n.level:
                    package = module.split(".") if is_pkg else module.split(".")[:-1]
                    package = package[: len(package) - (n.level - 1)]
                    base = ".".join(package + ([n.module] if n.module else []))
                else:
                    base = n.module or ""
                found.add(base)
                found.update(f"{base}.{a.name}" for a in n.names)  # `from pkg import submodule`
    return {m for m in found if (m == PACKAGE or m.startswith(PACKAGE + ".")) and _file(m, src)}


@functools.lru_cache(maxsize=None)
def _module_imports(module: str, path: Path, version: tuple[int, int], src: Path) -> frozenset[str]:
    return frozenset(_imported(_parse(path).body, module, path.name == "__init__.py", src))


def _closure(modules: set[str], src: Path) -> set[Path]:
    """Files of `modules`, their parent packages and everything they import, transitively."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        parts = m.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # importing a.b.c runs a and a.b
        path = _file(m, src)
        todo.extend(_module_imports(m, path, _version(path), src) - seen)
        if m in DISCOVERED:
            todo.extend(f"{m}.{p.stem}" for p in sorted(path.parent.glob("*.py")) if p.stem != "__init__")
    return {_file(m, src) for m in seen}


def _areas(src: Path) -> list[str]:
    """The command areas `orchmoe/cli.py` registers (its AREAS tuple)."""
    for node in _parse(src / PACKAGE / "cli.py").body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "AREAS" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise ValueError(f"{src / PACKAGE / 'cli.py'}: no AREAS tuple")


def _version(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=None)
def _handlers(path: Path, version: tuple[int, int]) -> dict[str, str]:
    """command -> handler function name in one area module: `sub.add_parser("<command>")` followed by
    `.set_defaults(func=<handler>)` in its register()."""
    handlers, current = {}, None
    calls = [n for n in ast.walk(_parse(path)) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]
    for n in sorted(calls, key=lambda n: (n.lineno, n.col_offset)):  # source order, not walk order
        if n.func.attr == "add_parser" and n.args and isinstance(n.args[0], ast.Constant):
            current = n.args[0].value
        elif n.func.attr == "set_defaults" and current is not None:
            for kw in n.keywords:
                if kw.arg == "func" and isinstance(kw.value, ast.Name):
                    handlers.setdefault(current, kw.value.id)
    return handlers


def _handler(command: str, src: Path) -> tuple[str, Path, str]:
    """(area module, its file, handler function name) for `orchmoe <command>`."""
    for area in _areas(src):
        path = _file(area, src)
        if path is not None and command in _handlers(path, _version(path)):
            return area, path, _handlers(path, _version(path))[command]
    raise ValueError(f"no `orchmoe {command}` command in {', '.join(_areas(src))}")


@functools.lru_cache(maxsize=None)
def _handler_imports(area: str, path: Path, version: tuple[int, int], handler: str, src: Path) -> frozenset[str]:
    """`orchmoe` modules the area module's top level, the handler and the module-level functions it calls import."""
    tree = _parse(path)
    functions = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    used, todo = set(), [handler]
    while todo:  # the handler and the same-module functions it references, transitively
        name = todo.pop()
        if name in used:
            continue
        used.add(name)
        todo.extend(n.id for n in ast.walk(functions[name]) if isinstance(n, ast.Name) and n.id in functions)
    top = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    return frozenset(_imported(top + [functions[f] for f in used], area, False, src) - {area})


def command_files(command: str, src: Path = SRC) -> list[Path]:
    """Source files `orchmoe <command>` runs: the entry point, the area module's top level, the handler and the
    module-level functions it calls (only those: an area's other commands import other code lazily)."""
    area, path, handler = _handler(command, src)
    modules = set(_handler_imports(area, path, _version(path), handler, src))
    parents = {".".join(area.split(".")[:i]) for i in range(1, area.count(".") + 1)}
    return sorted(_closure(modules | parents | {f"{PACKAGE}.cli"}, src) | {path})


def script_files(script: Path, src: Path = SRC) -> list[Path]:
    """A workflow glue script and the `orchmoe` modules it imports."""
    tree = ast.parse(Path(script).read_bytes(), filename=str(script))
    return sorted({Path(script)} | _closure(_imported(tree.body, "__main__", False, src), src))


def fingerprint(files, root: Path | None = None) -> str:
    """md5 over the files' paths (relative to `root`) and bytes: any edit to any of them changes it."""
    h = hashlib.md5()
    for f in sorted(Path(p) for p in files):
        name = f.relative_to(root) if root else f.name
        h.update(f"{name.as_posix()}\0".encode())
        h.update(hashlib.md5(f.read_bytes()).hexdigest().encode())
    return h.hexdigest()
