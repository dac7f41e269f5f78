"""OrchMoE (Wang et al., arXiv 2401.10559): a task router and a skill router per transformer block.

Task router, eq. 4-5, on X = the block's input hidden states over prompt tokens (RMS-normalised, padding masked):
    X_hat = softmax(X X^T / sqrt(d_k)) X + X,   w(X) = softmax(W_task mean_pool(X_hat) + b)   over T abstract tasks
Skill router, eq. 6 (= PEFT's PolyRouter): logits W_skill (T x S), U(-1e-3, 1e-3);
    W_hat = RelaxedBernoulli(1, W_skill).rsample() in training, sigmoid(W_skill) in evaluation; rows / row sum
Combination, eq. 3: alpha = w(X)^T W_hat (one weight per skill and example); delta_h = sum_s alpha_s B_s A_s x.
One task router per block, shared by the block's q, k and v (the reading that reproduces Table 4's ratios).
"""
import torch
from torch import nn

from ..routing import PromptRouter, masked_rms_norm, self_attention_pool
from .poly import gumbel_sigmoid_weights


class OrchMoERouter(PromptRouter):
    def __init__(self, cfg, d_model: int):
        super().__init__()
        self.task_router = nn.Linear(d_model, cfg.n_abstract_tasks)  # W_task (d_k x T) + bias
        self.skill_logits = nn.Parameter(torch.empty(cfg.n_abstract_tasks, cfg.n_skills).uniform_(-1e-3, 1e-3))

    def features(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Eq. 5 and the pooling, parameter-free: mean over prompt tokens of softmax(X X^T / sqrt(d)) X + X."""
        return self_attention_pool(masked_rms_norm(hidden.to(self.task_router.weight.dtype)), mask)

    def task_weights(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.task_router(self.features(hidden, mask)), dim=-1)  # (B, T)

    def route_features(self, features):
        w = torch.softmax(self.task_router(features), dim=-1)  # eq. 4 + softmax over the T abstract tasks
        alloc = gumbel_sigmoid_weights(self.skill_logits, self.training)  # (T, S), rows sum to 1
        self.ctx.readout[self.name] = {"task_weights": w.detach()}
        return w @ alloc  # (B, S)


    def allocation(self) -> torch.Tensor:
        return gumbel_sigmoid_weights(self.skill_logits, False)
