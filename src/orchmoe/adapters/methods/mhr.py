"""MHR, multi-head routing (Caccia et al.): Poly with n_splits heads, as PEFT's Poly with n_splits > 1.

Each skill's A is cut into n_splits blocks over the input dimension and B over the output dimension; block h of
every skill is mixed with its own Gumbel-sigmoid weights w_{t,h,:}; the mixed blocks are concatenated back.
"""
from .poly import PolyRouter


class MHRRouter(PolyRouter):
    def __init__(self, cfg, d_in: int):
        super().__init__(cfg, d_in, n_splits=cfg.n_splits)
