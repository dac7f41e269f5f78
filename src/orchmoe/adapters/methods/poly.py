"""Poly / Polytropon (Ponti et al.), as PEFT's PolyRouter (authored by an OrchMoE co-author) and microsoft/mttl.

Per adapted linear, task-indexed allocation logits l (n_tasks x S), init U(-1e-3, 1e-3).
z = RelaxedBernoulli(temperature=1, logits=l[task]).rsample() in training (Gumbel-sigmoid, OrchMoE eq. 6),
z = sigmoid(l[task]) in evaluation; w = z / (sum_s z_s + 1e-12). Skills are merged before use (A_b = sum w_s A_s,
B_b = sum w_s B_s), scaled by 1/r, as in PEFT and mttl. An unknown task (task id -1, e.g. the unseen tasks of
OrchMoE Table 2) gets the average of the learned allocations (mttl's `allow_unknown_tasks`, MHR-mu's averaging).
"""
import torch
from torch import nn

from ..registry import MethodSpec, register_method
from ..routing import Router


def relaxed_bernoulli_rsample(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """`torch.distributions.RelaxedBernoulli(temperature, logits=logits).rsample()`, op for op: the same random
    numbers, values and gradients (tests/adapters/test_core.py compares them bit for bit). Written out because
    building the two distribution objects costs ~50 us per call, and a T5 training step calls it once per adapted
    linear (36 times): a few percent of a Poly step."""
    eps = torch.finfo(logits.dtype).eps
    probs = torch.sigmoid(logits).clamp(min=eps, max=1 - eps)  # torch: clamp_probs(logits_to_probs(logits))
    u = torch.rand(logits.shape, dtype=logits.dtype, device=logits.device).clamp(min=eps, max=1 - eps)
    x = u.log() - (-u).log1p() + probs.log() - (-probs).log1p()
    if temperature != 1.0:  # x / 1 is x exactly
        x = x / temperature
    return torch.sigmoid(x).clamp(min=torch.finfo(x.dtype).tiny, max=1 - eps)  # torch: SigmoidTransform


def gumbel_sigmoid_weights(logits: torch.Tensor, training: bool) -> torch.Tensor:
    z = relaxed_bernoulli_rsample(logits) if training else torch.sigmoid(logits)
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

    def weights(self, x):
        return self.once_per_call(self._weights)

    def _weights(self):
        if self.ctx is None:
            raise RuntimeError(f"router {self.name}: no routing context (forward called outside the wrapper?)")
        rows, unknown = self.ctx.task_rows(self.n_tasks, self.module_logits.device, type(self).__name__)
        if self.oracle is not None:
            w = self.oracle[rows]
            return w if unknown is None else torch.where(unknown[:, None], self.oracle.mean(0), w)
        logits = self.module_logits[rows].view(-1, self.n_splits, self.n_skills)
        w = gumbel_sigmoid_weights(logits, self.training)
        if unknown is not None:
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
