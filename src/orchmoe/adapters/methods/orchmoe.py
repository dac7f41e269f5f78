"""OrchMoE (Wang et al., arXiv 2401.10559): a task router and a skill router per transformer block.

Task router, eq. 4-5, on X = the block's input hidden states over prompt tokens (RMS-normalised, padding masked):
    X_hat = softmax(X X^T / sqrt(d_k)) X + X,   w(X) = softmax(W_task mean_pool(X_hat) + b)   over T abstract tasks
Skill router, eq. 6 (= PEFT's PolyRouter): logits W_skill (T x S), U(-1e-3, 1e-3);
    W_hat = RelaxedBernoulli(1, W_skill).rsample() in training, sigmoid(W_skill) in evaluation; rows / row sum
Combination, eq. 3: alpha = w(X)^T W_hat (one weight per skill and example); delta_h = sum_s alpha_s B_s A_s x.
One task router per block, shared by the block's q, k and v (the reading that reproduces Table 4's ratios).
"""
import torch
import torch.nn.functional as F
from torch import nn

from ..routing import PromptRouter, masked_rms_norm, mean_pool
from .poly import gumbel_sigmoid_weights
from ..registry import MethodSpec, register_method


class OrchMoERouter(PromptRouter):
    def __init__(self, cfg, d_model: int):
        super().__init__()
        self.task_router = nn.Linear(d_model, cfg.n_abstract_tasks)  # W_task (d_k x T) + bias
        self.skill_logits = nn.Parameter(torch.empty(cfg.n_abstract_tasks, cfg.n_skills).uniform_(-1e-3, 1e-3))

    def features(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Eq. 5 and the pooling, parameter-free: mean over prompt tokens of softmax(X X^T / sqrt(d)) X + X."""
        x = masked_rms_norm(hidden.to(self.task_router.weight.dtype))
        keys = mask.bool()
        keys = keys | ~keys.any(1, keepdim=True)  # a row without prompt tokens attends everywhere instead of to NaN
        # SDPA scales by 1/sqrt(d) as eq. 5 does; padding keys are masked, padding queries are dropped by the pool.
        x_hat = F.scaled_dot_product_attention(x, x, x, attn_mask=keys[:, None, :]) + x
        return mean_pool(x_hat, mask)

    def route_features(self, features):
        w = torch.softmax(self.task_router(features), dim=-1)  # eq. 4 + softmax over the T abstract tasks
        alloc = gumbel_sigmoid_weights(self.skill_logits, self.training)  # (T, S), rows sum to 1
        self.ctx.readout[self.name] = {"task_weights": w.detach()}
        return w @ alloc  # (B, S)


    def allocation(self) -> torch.Tensor:
        return gumbel_sigmoid_weights(self.skill_logits, False)


def _check(cfg, bad):
    if cfg.n_abstract_tasks is None:
        cfg.n_abstract_tasks = cfg.n_tasks
    if not isinstance(cfg.n_abstract_tasks, int) or cfg.n_abstract_tasks < 1:
        bad("n_abstract_tasks", "must be a positive integer (default: n_tasks) for method 'orchmoe'")


SPEC = register_method(MethodSpec(
    name="orchmoe", label="OrchMoE", router=OrchMoERouter, order=50, defaults={"n_skills": 4}, check=_check,
    paper={"rank": 4, "n_skills": 4},  # OrchMoE section 4.2: 4 skills of r=4
    references=tuple({"match": {"architecture": "glm-10b", "n_tasks": 100, "n_abstract_tasks": t},
                      "column": "ratio_percent", "value": v, "text": f"{v:.2f} %", "source": "OrchMoE Table 4"}
                     for t, v in ((100, 0.39), (80, 0.35), (60, 0.31), (40, 0.27), (20, 0.23))),
    uses_n_tasks=True,
))
