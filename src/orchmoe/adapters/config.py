"""AdapterConfig: every knob of every method, validated with one clear error per bad field."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from orchmoe.errors import ConfigError

from . import registry


def __getattr__(name):
    if name == "METHODS":  # the registered method names, in table order (adapters/registry.py)
        return registry.methods()
    raise AttributeError(name)


@dataclass
class AdapterConfig:
    method: str = "lora"
    # Names match the last component of a module path (PEFT); a string is a regex over the full path.
    # "query_key_value:q,k,v": separate LoRAs on the equal output slices of a fused linear (adapters/fused.py).
    target_modules: list[str] | str = field(default_factory=lambda: ["q", "k", "v"])
    rank: int = 8
    n_skills: int | None = None  # S: skills (OrchMoE/Poly/MHR), experts (MoE-LoRA), domain LoRAs (MoA); lora: 1
    alpha: float | None = None  # scaling = alpha / rank; None = the method's default (see docs/methods.md)
    dropout: float = 0.0
    n_tasks: int | None = None  # poly, mhr: real training tasks (task ids); orchmoe: default for n_abstract_tasks
    n_abstract_tasks: int | None = None  # orchmoe T
    n_splits: int = 1  # mhr heads
    top_k: int | None = None  # moe_lora; None = all experts (soft mixing)
    balance_loss_weight: float = 0.0  # moe_lora Switch-style load balancing
    routing_loss_weight: float = 1.0  # moa cross-entropy against domain labels
    moa_train_routing: str = "gold"  # "gold": each example uses its domain's LoRA; "router": the router's softmax
    moa_inference: str = "top1"  # "top1" or "soft"
    # OrchMoE: eq. 4 as written ("affine": w(X) = W_Task X_hat + Bias) or with a softmax over the T abstract tasks
    # (docs/methods.md, ambiguity 5)
    orchmoe_task_router: str = "affine"
    # OrchMoE routing options where the paper is silent (docs/methods.md, ambiguities 26-29)
    orchmoe_gumbel: str = "example"  # one W_hat sample per example (PEFT Poly); "batch": one per block and forward
    orchmoe_skill_init: float = 1e-3  # W_Skill ~ U(-a, a) (PEFT PolyRouter: 1e-3)
    orchmoe_feature_norm: str = "none"  # "none": eq. 5 as written; "layer": pooled features centred and scaled
    orchmoe_balance_weight: float = 0.0  # > 0: loss weight * (log T - entropy of the batch-mean w(X))
    # A method's own settings, declared with their defaults in its registry entry (MethodSpec.options): a method
    # added in one file needs no new field here
    options: dict = field(default_factory=dict)
    # poly reference "oracle": a fixed task-skill allocation (n_tasks x n_skills rows, from the ground-truth skill
    # map) instead of learned logits; task_names name its rows, so held-out tasks are routed by name
    oracle_allocation: list | None = None
    task_names: list | None = None

    @classmethod
    def from_dict(cls, d: dict) -> "AdapterConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        for key in d:
            if key not in known:
                raise ConfigError(f"adapter config: unknown field {key!r} (known: {', '.join(sorted(known))})")
        cfg = cls(**d)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> "AdapterConfig":
        def bad(name, why):
            raise ConfigError(f"adapter config: {name}={getattr(self, name)!r} {why}")

        spec = registry.get(self.method)  # an unknown method: one line listing the registered ones
        if not isinstance(self.options, dict):
            bad("options", "must be a mapping of the method's own settings")
        for key in self.options:
            if key not in spec.options:
                bad("options", f"has {key!r}, not a setting of method {self.method!r} "
                               f"(its options: {', '.join(sorted(spec.options)) or 'none'})")
        self.options = {**spec.options, **self.options}
        for name, value in spec.defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if not isinstance(self.rank, int) or self.rank < 1:
            bad("rank", "must be a positive integer")
        if self.n_skills is None:
            self.n_skills = 4
        if not isinstance(self.n_skills, int) or self.n_skills < 1:
            bad("n_skills", "must be a positive integer")
        if not 0.0 <= self.dropout < 1.0:
            bad("dropout", "must be in [0, 1)")
        if not self.target_modules:
            bad("target_modules", "must name at least one module")
        from .fused import fused_targets

        fused_targets(self.target_modules)  # a malformed "module:slices" entry raises, naming it
        if spec.task_ids and (not isinstance(self.n_tasks, int) or self.n_tasks < 1):
            bad("n_tasks", f"must be a positive integer for method {self.method!r} (it routes by task id)")
        if not isinstance(self.n_splits, int) or self.n_splits < 1:
            bad("n_splits", "must be a positive integer")
        if not spec.multi_head and self.n_splits != 1:
            heads = [s.name for s in registry.specs() if s.multi_head]
            bad("n_splits", f"is only used by method {' or '.join(map(repr, heads))}")
        if self.top_k is not None and not (1 <= self.top_k <= self.n_skills):
            bad("top_k", f"must be between 1 and n_skills={self.n_skills}")
        if self.alpha is not None and self.alpha <= 0:
            bad("alpha", "must be positive")
        if spec.check is not None:
            spec.check(self, bad)
        if self.oracle_allocation is not None:
            rows = self.oracle_allocation
            if self.method != "poly":
                bad("oracle_allocation", "is only used by method 'poly'")
            if len(rows) != self.n_tasks or any(len(r) != self.n_skills or abs(sum(r) - 1) > 1e-6 for r in rows):
                bad("oracle_allocation", f"must be n_tasks={self.n_tasks} rows of n_skills={self.n_skills} "
                    "weights summing to 1")
        if self.task_names is not None and len(self.task_names) != self.n_tasks:
            bad("task_names", f"must name n_tasks={self.n_tasks} tasks")
        return self

    @property
    def scaling(self) -> float:
        if self.alpha is not None:
            return self.alpha / self.rank
        # PEFT's Poly (and mttl) scale by 1/r; PEFT's LoRA default is alpha = r (scaling 1).
        return 1.0 / self.rank if registry.get(self.method).scale_by_rank else 1.0
