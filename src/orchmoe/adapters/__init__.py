"""The multi-adapter library: a stacked LoRA bank per adapted linear, shared routing, one small file per method."""
from .config import METHODS, AdapterConfig
from .model import MultiAdapterModel, attach_adapters, load_adapters, read_adapter_config
from .params import count_parameters

__all__ = ["METHODS", "AdapterConfig", "MultiAdapterModel", "attach_adapters", "load_adapters",
           "read_adapter_config", "count_parameters"]
