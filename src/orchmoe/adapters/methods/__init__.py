"""One file per method: its router (how the mixing weights over the LoRA bank are made) and, at the end, its
`register_method(MethodSpec(...))` (adapters/registry.py). Files here are found by the registry; nothing lists them."""


def __getattr__(name):
    if name == "ROUTERS":  # method name -> router class, from the registry
        from ..registry import specs

        return {s.name: s.router for s in specs()}
    raise AttributeError(name)
