"""The multi-adapter library: a stacked LoRA bank per adapted linear, shared routing, one small file per method."""
from .config import AdapterConfig
from .model import MultiAdapterModel, attach_adapters, load_adapters, read_adapter_config
from .params import count_parameters

__all__ = ["METHODS", "AdapterConfig", "MultiAdapterModel", "attach_adapters", "load_adapters",
           "read_adapter_config", "count_parameters"]


def __getattr__(name):
    if name == "METHODS":  # the registered method names (adapters/registry.py), read when asked
        from .registry import methods

        return methods()
    raise AttributeError(name)
