"""A bank of S LoRA modules for one linear layer, stored stacked and applied without a loop over skills.

A: (S, r, d_in), B: (S, d_out, r). `mix="outputs"` computes sum_s w_s B_s A_s x (OrchMoE eq. 2-3, MoLoRA) as one
rank-S*r product with each r-block scaled by its weight; `mix="weights"` first merges A_b = sum_s w_s A_s and
B_b = sum_s w_s B_s per example (PEFT/mttl Poly), and with H splits mixes each input/output block with its own
weights (MHR).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def expand_to_batch(w: torch.Tensor, batch: int) -> torch.Tensor:
    """Repeat per-sequence routing when beam search / several return sequences grow the batch k-fold."""
    if w.shape[0] == batch:
        return w
    if batch % w.shape[0]:
        raise RuntimeError(f"routing batch {w.shape[0]} does not divide the layer batch {batch}")
    return w.repeat_interleave(batch // w.shape[0], dim=0)


class LoRABank(nn.Module):
    def __init__(self, d_in: int, d_out: int, n_skills: int, rank: int, scaling: float,
                 dropout: float = 0.0, n_splits: int = 1):
        super().__init__()
        self.d_in, self.d_out, self.n_skills, self.rank, self.n_splits = d_in, d_out, n_skills, rank, n_splits
        self.scaling = scaling
        self.lora_A = nn.Parameter(torch.empty(n_skills, rank, d_in))
        self.lora_B = nn.Parameter(torch.zeros(n_skills, d_out, rank))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        # PEFT: A ~ kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(d_in), 1/sqrt(d_in)); B = 0 so the model starts as the base.
        bound = 1.0 / math.sqrt(self.d_in)
        self.lora_A.uniform_(-bound, bound)
        self.lora_B.zero_()

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None, mix: str = "outputs") -> torch.Tensor:
        x = self.dropout(x).to(self.lora_A.dtype)
        squeeze = x.dim() == 2
        if squeeze:
            x = x.unsqueeze(1)
        if mix == "weights":
            out = self._merge_weights(x, weights)
        else:
            out = self._merge_outputs(x, weights)
        out = out * self.scaling
        return out.squeeze(1) if squeeze else out

    def _merge_outputs(self, x: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
        S, r = self.n_skills, self.rank
        h = F.linear(x, self.lora_A.reshape(S * r, self.d_in))  # (B, L, S*r)
        if w is not None:
            w = expand_to_batch(w, x.shape[0]).to(h.dtype)
            if w.dim() == 2:  # per sequence (B, S)
                w = w[:, None, :]
            h = (h.unflatten(-1, (S, r)) * w[..., None]).flatten(-2)
        return F.linear(h, self.lora_B.permute(1, 0, 2).reshape(self.d_out, S * r))

    def _merge_weights(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        S, r, H = self.n_skills, self.rank, self.n_splits
        w = expand_to_batch(w, x.shape[0]).to(x.dtype)
        if w.dim() == 2:
            w = w[:, None, :]  # (B, 1, S)
        A = torch.einsum("bhs,srhi->brhi", w, self.lora_A.view(S, r, H, self.d_in // H)).flatten(2)  # (B, r, d_in)
        Bm = torch.einsum("bhs,shor->bhor", w, self.lora_B.view(S, H, self.d_out // H, r)).flatten(1, 2)  # (B, d_out, r)
        return torch.bmm(torch.bmm(x, A.transpose(1, 2)), Bm.transpose(1, 2))
