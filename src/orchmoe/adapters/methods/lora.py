"""LoRA (Hu et al.): a single low-rank update, h = W0 x + (alpha/r) B A x. No routing."""
from ..registry import MethodSpec, register_method
from ..routing import Router


class LoRARouter(Router):
    mix = "outputs"

    def __init__(self, cfg, d_in: int):
        super().__init__()

    def weights(self, x):
        return None


def _check(cfg, bad):
    if cfg.n_skills != 1:
        bad("n_skills", "must be 1 for method 'lora'")


SPEC = register_method(MethodSpec(
    name="lora", label="LoRA", router=LoRARouter, order=10, routed=False, check=_check,
    defaults={"n_skills": 1},
    paper={"rank": 32},  # OrchMoE section 4.2's equal budget: one LoRA of r=32
    references=({"match": {"architecture": "baichuan-7b", "rank": 64}, "column": "adapter", "value": 143e6,
                 "text": "143M per LoRA", "source": "MoA Table 4"},),
))
