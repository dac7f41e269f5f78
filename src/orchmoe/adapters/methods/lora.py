"""LoRA (Hu et al.): a single low-rank update, h = W0 x + (alpha/r) B A x. No routing."""
from ..routing import Router


class LoRARouter(Router):
    mix = "outputs"

    def __init__(self, cfg, d_in: int):
        super().__init__()

    def weights(self, x):
        return None
