"""Poly / Polytropon (Ponti et al.), as PEFT's PolyRouter (authored by an OrchMoE co-author) and microsoft/mttl.

Per adapted linear, task-indexed allocation logits l (n_tasks x S), init U(-1e-3, 1e-3).
z = RelaxedBernoulli(temperature=1, logits=l[task]).rsample() in training (Gumbel-sigmoid, OrchMoE eq. 6),
z = sigmoid(l[task]) in evaluation; w = z / (sum_s z_s + 1e-12). Skills are merged before use (A_b = sum w_s A_s,
B_b = sum w_s B_s), scaled by 1/r, as in PEFT and mttl. An unknown task (task id -1, e.g. the unseen tasks of
OrchMoE Table 2) gets the average of the learned allocations (mttl's `allow_unknown_tasks`, MHR-mu's averaging).
"""
import torch
from torch import nn
from torch.distributions import RelaxedBernoulli

from orchmoe.errors import ConfigError

from ..routing import Router
from ..registry import MethodSpec, register_method


def gumbel_sigmoid_weights(logits: torch.Tensor, training: bool) -> torch.Tensor:
    if training:
        z = RelaxedBernoulli(temperature=torch.tensor(1.0, device=logits.device), logits=logits,
                             validate_args=False).rsample()  # logits are parameters: nothing to validate per call
    else:
        z = torch.sigmoid(logits)
    return z / (z.sum(-1, keepdim=True) + 1e-12)


class PolyRouter(Router):
    mix = "weights"

    def __init__(self, cfg, d_in: int, n_splits: int = 1):
        super().__init__()
        self.n_tasks, self.n_skills, self.n_splits = cfg.n_tasks, cfg.n_skills, n_splits
        self.module_logits = nn.Parameter(torch.empty(cfg.n_tasks, n_splits * cfg.n_skills).uniform_(-1e-3, 1e-3))
        oracle = getattr(cfg, "oracle_allocation", None)  # the oracle reference: fixed rows, nothing learned
        if oracle is not None:
            self.module_logits.requires_grad_(False)
        self.register_buffer("oracle", None if oracle is None else torch.tensor(oracle, dtype=torch.float32),
                             persistent=False)

    def task_ids(self) -> torch.Tensor:
        ids = self.ctx.task_ids if self.ctx is not None else None
        if ids is None:
            raise ConfigError(f"{type(self).__name__}: task_ids are required (Poly/MHR route by task id)")
        if (ids < -1).any() or (ids >= self.n_tasks).any():
            raise ConfigError(f"{type(self).__name__}: task_ids must be in [0, n_tasks={self.n_tasks}) or -1 "
                              f"(unknown task); got {ids.tolist()}")
        return ids.to(self.module_logits.device)

    def weights(self, x):
        return self.once_per_call(self._weights)

    def _weights(self):
        ids = self.task_ids()
        if self.oracle is not None:
            return torch.where((ids < 0)[:, None], self.oracle.mean(0), self.oracle[ids.clamp_min(0)])
        logits = self.module_logits[ids.clamp_min(0)].view(-1, self.n_splits, self.n_skills)
        w = gumbel_sigmoid_weights(logits, self.training)
        unknown = ids < 0
        if unknown.any():
            w = torch.where(unknown[:, None, None], self.allocation().view(self.n_tasks, self.n_splits, -1).mean(0), w)
        return w if self.n_splits > 1 else w[:, 0]

    def allocation(self) -> torch.Tensor:
        """Evaluation-time task-skill allocation (n_tasks x [n_splits x] S), rows sum to 1."""
        if self.oracle is not None:
            return self.oracle
        return gumbel_sigmoid_weights(self.module_logits.view(self.n_tasks, self.n_splits, self.n_skills), False).squeeze(1)


SPEC = register_method(MethodSpec(
    name="poly", label="Poly", router=PolyRouter, order=30, defaults={"n_skills": 4},
    paper={"rank": 8, "n_skills": 4},  # OrchMoE section 4.2: 4 skills of r=8
    uses_n_tasks=True, task_ids=True, scale_by_rank=True,
))
