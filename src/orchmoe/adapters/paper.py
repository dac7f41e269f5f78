"""The papers' parameter settings and published parameter numbers, read from each method's registry entry
(`paper=`, `references=` in adapters/methods/<name>.py) by `orchmoe params`."""
from __future__ import annotations

from . import registry


def settings() -> dict:
    """method -> the paper's AdapterConfig fields, used for a bare method name (`orchmoe params --method lora`).

    OrchMoE section 4.2's equal-budget settings: LoRA r=32; MoE-LoRA, Poly, MHR 4 experts of r=8; OrchMoE 4 skills
    of r=4. MoA: 8 domain LoRAs. Configs say their own."""
    return {s.name: dict(s.paper) for s in registry.specs()}


def references() -> list[dict]:
    """Published numbers, printed beside ours. A reference applies to a row whose fields equal all of its `match`
    items (architecture, method, the suite's task count n_tasks, adapter fields); `column` is the row field it
    compares."""
    return [{**ref, "match": {"method": s.name, **ref["match"]}} for s in registry.specs() for ref in s.references]


def __getattr__(name):
    if name == "SETTINGS":
        return settings()
    if name == "REFERENCES":
        return references()
    raise AttributeError(name)


def reference_for(row: dict) -> dict | None:
    for ref in references():
        if all(row.get(k) == v for k, v in ref["match"].items()):
            return ref
    return None
