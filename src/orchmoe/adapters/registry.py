"""The method registry: everything about a method is declared once, at the end of its own file.

A method is `adapters/methods/<name>.py` (or any importable module named in the `ORCHMOE_METHODS` environment
variable, comma-separated, e.g. `ORCHMOE_METHODS=my_pkg.my_method`) ending with

    SPEC = register_method(MethodSpec(name="<name>", label="...", router=MyRouter, ...))

The method's name is its module's name (the file name), so the workflow can list the names without importing
torch (`method_names`). Every reader asks the registry: AdapterConfig validation, the model's router class,
`orchmoe params` paper settings and published numbers, table labels and row order, the routed-method figures,
the workflow schema's `methods.*.method` check and the tests' parametrised method lists.

Parameter counting needs no formula: `adapters/params.py` builds the base on the meta device and attaches the
method's router and banks, so a new method is counted exactly by its own `router` class.

This module imports only the standard library at the top (the Snakefile loads it by path without the package).
"""
from __future__ import annotations

import importlib
import os
import pkgutil
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ENV = "ORCHMOE_METHODS"
BUILTIN_DIR = Path(__file__).resolve().parent / "methods"


@dataclass(frozen=True)
class MethodSpec:
    name: str  # the config's `method:` value; equals the module's name
    label: str  # the paper's name, used in tables and figures
    router: type  # a routing.Router subclass: how the mixing weights over the LoRA bank are made
    order: int = 1000  # row order in tables (the papers' method order; new methods after the shipped ones)
    defaults: dict = field(default_factory=dict)  # AdapterConfig fields this method fills when unset (n_skills: 4)
    options: dict = field(default_factory=dict)  # its own settings and their defaults: cfg.options[name]
    paper: dict = field(default_factory=dict)  # the paper's setting: `orchmoe params --method <name>`
    references: tuple = ()  # published numbers: {"match": {...}, "column", "value", "text", "source"}
    uses_n_tasks: bool = False  # sized by the suite's task count: n_tasks is filled from the suite's manifest
    task_ids: bool = False  # routes by task id: n_tasks is required and batches carry task_ids
    domain_ids: bool = False  # one LoRA per domain: n_skills = the suite's domain count, trained on domain labels
    routed: bool = True  # learns a routing worth plotting (figures' task clustering, skill recovery)
    multi_head: bool = False  # reads n_splits (MHR heads); every other method needs n_splits = 1
    scale_by_rank: bool = False  # alpha unset: scaling 1/r (PEFT's Poly, mttl) instead of 1 (alpha = r)
    check: Callable | None = None  # check(cfg, bad): method-specific validation after the shared checks


_SPECS: dict[str, MethodSpec] = {}
_loaded = False


def _error(message: str):
    from orchmoe.errors import ConfigError

    return ConfigError(message)


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add (or, when its module is reloaded, replace) a method. Returns the spec, for `SPEC = register_method(...)`."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", spec.name):
        raise _error(f"method {spec.name!r}: a method name is lower-case letters, digits and '_' (one path segment)")
    module = spec.router.__module__.rsplit(".", 1)[-1]
    if module != spec.name:
        raise _error(f"method {spec.name!r}: its router {spec.router.__name__} lives in module {module!r}; "
                     f"a method's name is its module's name (methods/<name>.py)")
    old = _SPECS.get(spec.name)
    if old is not None and old.router.__module__ != spec.router.__module__:
        raise _error(f"method {spec.name!r} is registered twice ({old.router.__module__}, {spec.router.__module__})")
    _SPECS[spec.name] = spec
    return spec


def env_modules() -> list[str]:
    return [m for m in re.split(r"[,\s]+", os.environ.get(ENV, "")) if m]


def method_names() -> list[str]:
    """The registered names without importing anything: the shipped method files, then the ORCHMOE_METHODS modules."""
    builtin = sorted(p.stem for p in BUILTIN_DIR.glob("*.py") if not p.stem.startswith("_"))
    return builtin + [m.rsplit(".", 1)[-1] for m in env_modules() if m.rsplit(".", 1)[-1] not in builtin]


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from . import methods

    for info in pkgutil.iter_modules(methods.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{methods.__name__}.{info.name}")
    for module in env_modules():
        try:
            importlib.import_module(module)
        except ImportError as e:
            _loaded = False
            raise _error(f"{ENV}: cannot import method module {module!r} ({e})") from None
        if module.rsplit(".", 1)[-1] not in _SPECS:
            raise _error(f"{ENV}: module {module!r} registers no method named {module.rsplit('.', 1)[-1]!r} "
                         f"(end it with register_method(MethodSpec(...)))")


def specs() -> list[MethodSpec]:
    """Every registered method, in table order."""
    _load()
    return sorted(_SPECS.values(), key=lambda s: (s.order, s.name))


def methods() -> tuple[str, ...]:
    return tuple(s.name for s in specs())


def get(name: str) -> MethodSpec:
    _load()
    if name not in _SPECS:
        raise _error(f"adapter config: method={name!r} is not a known method ({', '.join(methods())}; "
                     f"one outside the package is named in {ENV})")
    return _SPECS[name]
