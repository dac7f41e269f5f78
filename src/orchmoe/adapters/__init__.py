"""The multi-adapter library: a stacked LoRA bank per adapted linear, shared routing, one small file per method.

The names below are imported when first used (PEP 562), so `import orchmoe.adapters.cli` and the registry do not
pull in torch and transformers: commands that never build a model (data sampling, tables) start in a blink.
"""
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # never run; for readers, type checkers and the code fingerprint (lineage.py reads these imports)
    from .config import AdapterConfig
    from .model import MultiAdapterModel, attach_adapters, load_adapters, read_adapter_config
    from .params import count_parameters

_NAMES = {
    "AdapterConfig": ".config",
    "MultiAdapterModel": ".model",
    "attach_adapters": ".model",
    "load_adapters": ".model",
    "read_adapter_config": ".model",
    "count_parameters": ".params",
}
__all__ = ["METHODS", *_NAMES]


def __getattr__(name):
    if name == "METHODS":  # the registered method names (adapters/registry.py), read when asked
        from .registry import methods

        return methods()
    if name in _NAMES:
        return getattr(import_module(_NAMES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
