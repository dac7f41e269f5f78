"""The papers' parameter settings and published parameter numbers: one place, read by `orchmoe params`."""
from __future__ import annotations

# OrchMoE section 4.2's equal-budget settings: LoRA r=32; MoE-LoRA, Poly, MHR 4 experts of r=8; OrchMoE 4 skills of
# r=4. MoA: 8 domain LoRAs. Used for a bare method name (`orchmoe params --method lora`); configs say their own.
SETTINGS = {"lora": {"rank": 32}, "moe_lora": {"rank": 8, "n_skills": 4}, "poly": {"rank": 8, "n_skills": 4},
            "mhr": {"rank": 8, "n_skills": 4, "n_splits": 8}, "orchmoe": {"rank": 4, "n_skills": 4},
            "moa": {"rank": 8, "n_skills": 8}}

# Published numbers, printed beside ours. A reference applies to a row whose fields equal all of its `match` items
# (architecture, method, the suite's task count n_tasks, adapter fields); `column` is the row field it compares.
REFERENCES = [
    *({"match": {"architecture": "glm-10b", "method": "orchmoe", "n_tasks": 100, "n_abstract_tasks": t},
       "column": "ratio_percent", "value": v, "text": f"{v:.2f} %", "source": "OrchMoE Table 4"}
      for t, v in ((100, 0.39), (80, 0.35), (60, 0.31), (40, 0.27), (20, 0.23))),
    {"match": {"architecture": "baichuan-7b", "method": "lora", "rank": 64}, "column": "adapter",
     "value": 143e6, "text": "143M per LoRA", "source": "MoA Table 4"},
    {"match": {"architecture": "baichuan-7b", "method": "moa", "rank": 64}, "column": "router",
     "value": 1.05e6, "text": "1.05M router", "source": "MoA Table 4"},
]


def reference_for(row: dict) -> dict | None:
    for ref in REFERENCES:
        if all(row.get(k) == v for k, v in ref["match"].items()):
            return ref
    return None
