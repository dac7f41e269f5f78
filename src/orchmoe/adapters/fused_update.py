"""A frozen nn.Linear and its low-rank update in one autograd node: out = x W^T + b + alpha (x A) B.

Plain autograd computes the update into a fresh (B, L, d_out) tensor and adds it to the base output, and in the
backward adds the update's input gradient to the base's. Here the second product accumulates into the base output
(GEMM with beta = 1) and the update's input gradient into the base's, so each adapted linear makes two passes over
(B, L, d) tensors fewer each way and keeps two allocations less. Same products, same maths (the sums differ in
rounding only; tests/adapters/test_fused_update.py compares outputs and every gradient with the plain path).

A, B are either shared, A (d_in, r) and B (r, d_out) (LoRA), or per example, A (N, d_in, r) and B (N, r, d_out)
(Poly / MHR's merged skills). The base weight gets no gradient: callers use it only for a frozen weight.
"""
from __future__ import annotations

import torch
from torch import nn


class LinearPlusLowRank(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, A, B, alpha: float):
        if A.dim() == 2:
            x2 = x.reshape(-1, x.shape[-1])
            h = x2 @ A
            out = torch.addmm(bias, x2, weight.t()) if bias is not None else x2 @ weight.t()
            out = out.addmm_(h, B, alpha=alpha).view(*x.shape[:-1], -1)
        else:
            h = torch.bmm(x, A)
            out = torch.nn.functional.linear(x, weight, bias).baddbmm_(h, B, alpha=alpha)
        ctx.save_for_backward(x, weight, A, B, h)
        ctx.alpha = alpha
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight, A, B, h = ctx.saved_tensors
        alpha = ctx.alpha
        need_x, _, _, need_A, need_B, _ = ctx.needs_input_grad
        grad_x = grad_A = grad_B = None
        if A.dim() == 2:
            g2, x2 = grad.reshape(-1, grad.shape[-1]), x.reshape(-1, x.shape[-1])
            grad_h = g2 @ B.t()
            if alpha != 1.0:
                grad_h.mul_(alpha)
            if need_x:
                grad_x = (g2 @ weight).addmm_(grad_h, A.t()).view(x.shape)
            if need_A:
                grad_A = x2.t() @ grad_h
            if need_B:
                grad_B = h.t() @ g2
        else:
            grad_h = torch.bmm(grad, B.transpose(1, 2))
            if alpha != 1.0:
                grad_h.mul_(alpha)
            if need_x:
                grad_x = (grad @ weight).baddbmm_(grad_h, A.transpose(1, 2))
            if need_A:
                grad_A = torch.bmm(x.transpose(1, 2), grad_h)
            if need_B:
                grad_B = torch.bmm(h.transpose(1, 2), grad)
        if need_B and alpha != 1.0:
            grad_B.mul_(alpha)
        return grad_x, None, None, grad_A, grad_B, None


def fusable(base: nn.Module, x: torch.Tensor, A: torch.Tensor) -> bool:
    """Only where the result is the plain path's: a plain nn.Linear that nobody hooks, with a frozen weight and bias
    of the update's dtype, while gradients are recorded (generation keeps the plain path and its cached plans)."""
    return (type(base) is nn.Linear and not base._forward_hooks and not base._forward_pre_hooks
            and not base.weight.requires_grad and (base.bias is None or not base.bias.requires_grad)
            and torch.is_grad_enabled() and A.requires_grad
            and x.dtype == A.dtype == base.weight.dtype and (A.dim() == 2 or x.dim() == 3))
