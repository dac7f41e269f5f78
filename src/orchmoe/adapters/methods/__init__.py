"""One file per method; each only says how the mixing weights over the LoRA bank are made."""
from .lora import LoRARouter
from .mhr import MHRRouter
from .moa import MoARouter
from .moe_lora import MoELoRARouter
from .orchmoe import OrchMoERouter
from .poly import PolyRouter

ROUTERS = {
    "lora": LoRARouter,
    "moe_lora": MoELoRARouter,
    "poly": PolyRouter,
    "mhr": MHRRouter,
    "orchmoe": OrchMoERouter,
    "moa": MoARouter,
}
