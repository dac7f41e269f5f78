"""MHR, multi-head routing (Caccia et al.): Poly with n_splits heads, as PEFT's Poly with n_splits > 1.

Each skill's A is cut into n_splits blocks over the input dimension and B over the output dimension; block h of
every skill is mixed with its own Gumbel-sigmoid weights w_{t,h,:}; the mixed blocks are concatenated back.
"""
from ..registry import MethodSpec, register_method
from .poly import PolyRouter


class MHRRouter(PolyRouter):
    def __init__(self, cfg, d_in: int):
        super().__init__(cfg, d_in, n_splits=cfg.n_splits)


SPEC = register_method(MethodSpec(
    name="mhr", label="MHR", router=MHRRouter, order=40, defaults={"n_skills": 4},
    paper={"rank": 8, "n_skills": 4, "n_splits": 8},  # OrchMoE section 4.2: 4 skills of r=8; MHR's 8 heads
    uses_n_tasks=True, task_ids=True, scale_by_rank=True, multi_head=True,
))
