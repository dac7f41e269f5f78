"""Inject LoRA banks and routers into a Hugging Face model, and run it with a routing context per call."""
from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import GPT2LMHeadModel, LlamaForCausalLM
from transformers.modeling_outputs import CausalLMOutput
from transformers.pytorch_utils import Conv1D

from orchmoe.errors import ConfigError
from orchmoe.io import atomic_path, read_json

from . import registry
from .bank import LoRABank
from .config import AdapterConfig
from .fused import FusedAdaptedLinear, SliceAdapter, fused_targets
from .layer import AdaptedLinear, linear_dims
from .routing import RoutingContext, sequence_mask

# A training run's own adapter files. Not PEFT's names: a routed bank with routers is no PEFT adapter, and a folder
# named like one would be loaded by PEFT and fail (`orchmoe export` writes PEFT folders).
CONFIG_NAME = "orchmoe_adapter.json"
WEIGHTS_NAME = "orchmoe_adapter.safetensors"
FORMAT = "orchmoe-adapter"


def _matches(name: str, targets) -> bool:
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return name.rsplit(".", 1)[-1] in fused_targets(targets)  # "query_key_value:q,k,v" matches query_key_value


def block_of(model: nn.Module, name: str) -> str:
    """The outermost nn.ModuleList item containing module `name` (a transformer block), e.g. 'model.layers.3'."""
    parts = name.split(".")
    for i in range(1, len(parts)):
        parent = model.get_submodule(".".join(parts[:i - 1])) if i > 1 else model
        if isinstance(getattr(parent, parts[i - 1], None), nn.ModuleList):
            return ".".join(parts[: i + 1])
    raise ConfigError(f"target_modules: {name!r} is not inside a transformer block (no nn.ModuleList ancestor)")


def _final_hidden(base: nn.Module, inputs: dict):
    """(hidden, head, shift) for decoder-only layouts whose logits are head(hidden) position by position: the LM
    head's input over the sequence, the head, and whether labels are shifted against it. None for any other layout
    (the loss then comes from the full logits). A subclass that overrides forward is not trusted to compute its
    logits that way."""
    from orchmoe.models.glm import GLMLayoutForCausalLM

    inputs = {k: v for k, v in inputs.items() if k != "use_cache"}  # no KV cache: the loss reads one pass
    if type(base).forward is GLMLayoutForCausalLM.forward:
        hidden, shift = base.final_hidden(**inputs)
        return hidden, base.head_logits, shift
    if type(base).forward in (LlamaForCausalLM.forward, GPT2LMHeadModel.forward):  # Llama, SmolLM2, Baichuan layout
        return base.base_model(**inputs, use_cache=False).last_hidden_state, base.get_output_embeddings(), True
    return None


class MultiAdapterModel(nn.Module):
    def __init__(self, base_model: nn.Module, cfg: AdapterConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.base_model = base_model
        self.ctx = RoutingContext()
        self.is_encoder_decoder = bool(getattr(base_model.config, "is_encoder_decoder", False))
        self.gradient_checkpointing = False
        for p in base_model.parameters():
            p.requires_grad_(False)
        router_cls = registry.get(cfg.method).router
        self.block_routers = nn.ModuleDict()
        self.adapted: dict[str, AdaptedLinear] = {}
        targets = [(n, m) for n, m in base_model.named_modules()
                   if isinstance(m, (nn.Linear, Conv1D)) and _matches(n, cfg.target_modules)]
        if not targets:
            raise ConfigError(f"adapter config: target_modules={cfg.target_modules!r} matches no linear layer of "
                              f"{type(base_model).__name__}")
        d_model = base_model.config.get_text_config().hidden_size if hasattr(base_model.config, "get_text_config") \
            else base_model.config.hidden_size
        slices_of = fused_targets(cfg.target_modules)
        for name, module in targets:
            d_in, d_out = linear_dims(module)
            slices = slices_of.get(name.rsplit(".", 1)[-1])
            if slices and d_out % len(slices):
                raise ConfigError(f"target_modules: {name} ({d_in} -> {d_out}) does not split into {len(slices)} "
                                  f"equal slices {slices}")
            if slices is None:
                adapted = AdaptedLinear(module, *self._bank_and_router(name, name, module, d_in, d_out, d_model))
                self.adapted[name] = adapted
            else:
                parts = {s: SliceAdapter(*self._bank_and_router(f"{name}.{s}", name, module, d_in,
                                                                d_out // len(slices), d_model)) for s in slices}
                adapted = FusedAdaptedLinear(module, parts)
                self.adapted.update({f"{name}.{s}": part for s, part in parts.items()})
            parent, _, child = name.rpartition(".")
            setattr(base_model.get_submodule(parent) if parent else base_model, child, adapted)
        if self.is_encoder_decoder and router_cls.reads_hidden:
            base_model.get_encoder().register_forward_hook(self._capture_encoder_output)

    def _bank_and_router(self, name: str, module_name: str, module: nn.Module, d_in: int, d_out: int, d_model: int):
        """A LoRA bank for `name` (a linear, or one output slice of a fused linear) and the router that mixes it."""
        cfg, router_cls = self.cfg, registry.get(self.cfg.method).router
        if cfg.n_splits > 1 and (d_in % cfg.n_splits or d_out % cfg.n_splits):
            raise ConfigError(f"adapter config: n_splits={cfg.n_splits} must divide the dimensions of {name} "
                              f"({d_in} -> {d_out})")
        if router_cls.scope == "block":
            block = block_of(self.base_model, module_name)
            key = block.replace(".", "__")
            if key not in self.block_routers:
                with torch.device(module.weight.device):  # meta device: count without allocating
                    self.block_routers[key] = router_cls(cfg, d_model)
                self._attach_block_hook(block, self.block_routers[key], key)
            router = self.block_routers[key]
        else:
            with torch.device(module.weight.device):
                router = router_cls(cfg, d_in)
            router.name = name
        router.ctx = self.ctx
        with torch.device(module.weight.device):
            bank = LoRABank(d_in, d_out, cfg.n_skills, cfg.rank, cfg.scaling, cfg.dropout, cfg.n_splits)
        return bank, router, router_cls.mix

    # -- routing -------------------------------------------------------------------------------------------------
    def _attach_block_hook(self, block: str, router, key: str) -> None:
        router.name = key
        module = self.base_model.get_submodule(block)
        in_decoder = self.is_encoder_decoder and block.startswith(self._decoder_prefix())

        def pre_hook(mod, args, kwargs):
            if key in self.ctx.cache:  # computed at the prompt / prefill: reused at every decoding step
                return None
            if in_decoder:  # decoder hidden states are target tokens: route from the encoder's output instead
                if self.ctx.encoder_features is None:
                    hidden = self.ctx.encoder_hidden
                    self.ctx.encoder_features = router.features(hidden, sequence_mask(hidden, self.ctx.prompt_mask))
                features = self.ctx.encoder_features
            else:
                hidden = args[0] if args else kwargs["hidden_states"]
                features = router.features(hidden, sequence_mask(hidden, self.ctx.prompt_mask))
            self.ctx.cache[key] = router.route_features(features)
            return None

        module.register_forward_pre_hook(pre_hook, with_kwargs=True)

    def _decoder_prefix(self) -> str:
        decoder = self.base_model.get_decoder()
        return next(n for n, m in self.base_model.named_modules() if m is decoder) + "."

    def _capture_encoder_output(self, module, args, output):
        self.ctx.encoder_hidden = output[0] if isinstance(output, tuple) else output.last_hidden_state
        self.ctx.encoder_features = None

    @contextlib.contextmanager
    def routing(self, task_ids=None, domain_ids=None, prompt_mask=None):
        c = self.ctx
        c.task_ids, c.domain_ids, c.prompt_mask = task_ids, domain_ids, prompt_mask
        c.cache.clear(), c.losses.clear(), c.readout.clear(), c.plans.clear(), c.rows_of_tasks.clear()
        c.encoder_hidden = c.encoder_features = None
        try:
            yield c
        finally:
            c.cache.clear(), c.plans.clear(), c.rows_of_tasks.clear()
            c.encoder_hidden = c.encoder_features = None

    def _prompt_mask(self, prompt_mask, attention_mask, labels):
        if prompt_mask is not None or self.is_encoder_decoder:
            return prompt_mask if prompt_mask is not None else attention_mask
        if labels is not None and registry.get(self.cfg.method).router.reads_hidden:
            raise ConfigError(f"method {self.cfg.method!r} on a decoder-only model needs prompt_mask when labels are "
                              "given (the router must not read target tokens)")
        return attention_mask

    def forward(self, *, task_ids=None, domain_ids=None, prompt_mask=None, return_logits: bool = True, **inputs):
        """The base model's output under routing. return_logits=False (training): only the loss is needed, so a
        decoder-only layout applies the LM head at the target positions alone (`_target_loss`)."""
        mask = self._prompt_mask(prompt_mask, inputs.get("attention_mask"), inputs.get("labels"))
        if isinstance(inputs.get("labels"), torch.Tensor):
            # transformers' T5 loss calls labels.view(-1), which fails on a slice such as ids[:, :4]
            inputs["labels"] = inputs["labels"].contiguous()
        if self.gradient_checkpointing and self.training:  # a recomputed block would update a KV cache again
            inputs["use_cache"] = False
        with self.routing(task_ids, domain_ids, mask):
            if not return_logits and inputs.get("labels") is not None and not self.is_encoder_decoder:
                loss = self._target_loss(**inputs)
                if loss is not None:
                    return CausalLMOutput(loss=loss)
            return self.base_model(**inputs)

    def _target_loss(self, labels: torch.Tensor, **inputs) -> torch.Tensor | None:
        """The base model's LM loss (mean cross-entropy over the tokens whose label is not -100) with the LM head
        applied at those positions only: a prompt position's logits (vocab-sized, most of a decoder-only step's
        head FLOPs with long prompts) are never computed. None for a layout `_final_hidden` does not know."""
        found = _final_hidden(self.base_model, inputs)
        if found is None:
            return None
        hidden, head, shift = found
        if shift:  # the logits at position i predict token i + 1
            hidden, labels = hidden[:, :-1], labels[:, 1:]
        targets = labels != -100
        logits = head(hidden[targets]).float()  # float, as transformers' loss upcasts the logits
        return F.cross_entropy(logits, labels[targets])

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """Recompute each transformer block (the base's `_no_split_modules`) in backward instead of keeping its
        activations (non-reentrant torch checkpointing, so frozen base weights and inputs without grad are fine).
        The routing pre-hooks stay outside the checkpointed body: routing is computed once per call, and the body's
        recomputation sees the routing context as the block saw it (`RoutingContext.snapshot`)."""
        names = set(getattr(self.base_model, "_no_split_modules", None) or ())
        blocks = [m for m in self.base_model.modules() if type(m).__name__ in names]
        if enabled and not blocks:
            raise ConfigError(f"gradient_checkpointing: {type(self.base_model).__name__} names no transformer block "
                              "class (_no_split_modules)")
        for block in blocks:
            wrapper = vars(block).get("forward")
            # ours: put back what it wrapped (an instance forward of someone else's, e.g. accelerate's offloading
            # hook, stays under it)
            if hasattr(wrapper, "plain"):
                if wrapper.plain is None:
                    del block.forward
                else:
                    block.forward = wrapper.plain
            if enabled:
                wrapped = self._checkpointed(block.forward)
                wrapped.plain = vars(block).get("forward")
                block.forward = wrapped
        self.gradient_checkpointing = enabled and bool(blocks)

    def _checkpointed(self, forward):
        ctx = self.ctx

        def run(*args, **kwargs):
            if not (torch.is_grad_enabled() and self.training):
                return forward(*args, **kwargs)
            seen, calls = ctx.snapshot(), []

            def body(*a, **k):
                calls.append(None)
                if len(calls) == 1:  # the forward pass itself: it updates the context as usual
                    return forward(*a, **k)
                with ctx.restored(seen):  # its recomputation in backward
                    return forward(*a, **k)
            return checkpoint(body, *args, use_reentrant=False, **kwargs)
        return run

    @torch.no_grad()
    def generate(self, *, task_ids=None, domain_ids=None, prompt_mask=None, **inputs):
        mask = prompt_mask if prompt_mask is not None else inputs.get("attention_mask")
        with self.routing(task_ids, domain_ids, mask):
            return self.base_model.generate(**inputs)

    def routing_losses(self) -> dict:
        return {k: torch.stack(v).mean() for k, v in self.ctx.losses.items()}

    def routing_loss(self) -> torch.Tensor:
        losses = self.routing_losses()
        if not losses:
            return torch.zeros((), device=next(self.parameters()).device)
        return sum(losses.values())

    # -- parameters ----------------------------------------------------------------------------------------------
    def adapter_state_dict(self) -> dict:
        return {n: p.detach() for n, p in self.named_parameters() if p.requires_grad}

    def param_groups(self, lr: float, router_lr: float | None = None, weight_decay: float = 0.01,
                     task_router_lr: float | None = None) -> list[dict]:
        """LoRA weights with weight decay at `lr`; router parameters without decay at `router_lr` (mttl: 0.1 for Poly).
        `task_router_lr` (OrchMoE): the task router's Linear in a group of its own (None: with the other routers)."""
        adapters, routers, task_routers = [], [], []
        for n, p in self.named_parameters():
            if p.requires_grad:
                if ".bank." in f".{n}":
                    adapters.append(p)
                elif task_router_lr is not None and ".task_router." in f".{n}":
                    task_routers.append(p)
                else:
                    routers.append(p)
        groups = [{"params": adapters, "lr": lr, "weight_decay": weight_decay, "name": "adapters"}]
        if routers:
            groups.append({"params": routers, "lr": router_lr or lr, "weight_decay": 0.0, "name": "routers"})
        if task_routers:
            groups.append({"params": task_routers, "lr": task_router_lr, "weight_decay": 0.0, "name": "task_routers"})
        return groups

    # -- save / load / export ------------------------------------------------------------------------------------
    def save_adapters(self, path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with atomic_path(path / WEIGHTS_NAME) as tmp:
            save_file({k: v.contiguous().cpu() for k, v in self.adapter_state_dict().items()}, str(tmp))
        with atomic_path(path / CONFIG_NAME) as tmp:
            tmp.write_text(json.dumps({"format": FORMAT, "orchmoe_adapter": self.cfg.to_dict()}, indent=2,
                                      sort_keys=True) + "\n")
        return path

    def load_adapter_weights(self, path) -> None:
        file = Path(path) / WEIGHTS_NAME
        state = _load_weights(file)
        expected = set(self.adapter_state_dict())
        if set(state) != expected:
            missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
            raise ConfigError(f"{Path(path) / WEIGHTS_NAME}: adapter weights do not fit this model "
                              f"(missing {missing[:3]}, unexpected {extra[:3]})")
        params = dict(self.named_parameters())
        for k, v in state.items():  # a checkpoint trained on another base has the names but not the shapes
            if v.shape != params[k].shape:
                raise ConfigError(f"{file}: adapter weights do not fit this base model ({k}: checkpoint "
                                  f"{tuple(v.shape)}, base expects {tuple(params[k].shape)})")
        with torch.no_grad():
            for k, v in state.items():
                params[k].copy_(v)

    @torch.no_grad()
    def init_skills_from(self, lora_dirs) -> None:
        """MoE-LoRA / MoA: skill i starts from LoRA folder i: a single-LoRA run of this project (method 'lora') or a
        PEFT LoRA folder. Same rank and the same adapted modules; B is rescaled so that scaling * B A is kept."""
        from .export import is_peft_folder, read_peft_lora, split_fused

        if len(lora_dirs) != self.cfg.n_skills:
            raise ConfigError(f"init_skills_from: {len(lora_dirs)} checkpoints given for n_skills={self.cfg.n_skills}")
        for i, d in enumerate(lora_dirs):
            if is_peft_folder(d):
                layers, scaling = read_peft_lora(d)
                layers = split_fused(self, layers)
            else:
                cfg = read_adapter_config(d)
                if cfg.method != "lora":
                    raise ConfigError(f"{d}: init_skills_from needs method 'lora', got {cfg.method!r}")
                state = _load_weights(Path(d) / WEIGHTS_NAME)
                layers = {n[len("base_model."):-len(".bank.lora_A")]: (a[0], state[n[:-1] + "B"][0])
                          for n, a in state.items() if n.endswith(".bank.lora_A")}
                scaling = cfg.scaling
            missing = sorted(set(self.adapted) - set(layers))
            extra = sorted(set(layers) - set(self.adapted))
            if missing or extra:
                raise ConfigError(f"{d}: its LoRA modules differ from this config's target_modules "
                                  f"(missing {missing[:2]}, not targeted {extra[:2]})")
            for name, layer in self.adapted.items():
                A, B = layers[name]
                want_a, want_b = tuple(layer.bank.lora_A.shape[1:]), tuple(layer.bank.lora_B.shape[1:])
                if tuple(A.shape) != want_a or tuple(B.shape) != want_b:
                    raise ConfigError(f"{d}: {name} has lora_A {tuple(A.shape)} / lora_B {tuple(B.shape)}, this config "
                                      f"needs {want_a} / {want_b} (rank {self.cfg.rank})")
                layer.bank.lora_A[i].copy_(A)
                layer.bank.lora_B[i].copy_(B * (scaling / self.cfg.scaling))  # keep B_i A_i x * scaling unchanged

    @torch.no_grad()
    def export_peft(self, path, skill: int | None = None) -> Path:
        """Write one LoRA (method 'lora', or one skill of a bank) as a PEFT LoRA folder (see adapters/export.py)."""
        from .export import skill_layers, write_peft_lora

        if skill is None:
            if self.cfg.n_skills != 1:
                raise ConfigError(f"export_peft: method {self.cfg.method!r} has {self.cfg.n_skills} skills; pass skill=")
            skill = 0
        return write_peft_lora(path, self, skill_layers(self, skill), self.cfg.scaling)

    # -- readout -------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def routing_report(self) -> dict:
        """Learned task-skill allocations (evaluation-time, rows sum to 1) per router, for the figures."""
        alloc = {}
        for layer in self.adapted.values():
            router = layer._shared_router[0]
            if hasattr(router, "allocation") and router.name not in alloc:
                alloc[router.name] = router.allocation().cpu().numpy()
        return {"method": self.cfg.method, "allocation": alloc}

    def last_routing(self) -> dict:
        return {k: {n: t.cpu() for n, t in v.items()} for k, v in self.ctx.readout.items()}


def attach_adapters(base_model: nn.Module, cfg: AdapterConfig | dict) -> MultiAdapterModel:
    if isinstance(cfg, dict):
        cfg = AdapterConfig.from_dict(cfg)
    return MultiAdapterModel(base_model, cfg)


def _load_weights(file: Path) -> dict:
    """adapter_model.safetensors; ConfigError naming the file when it is missing, truncated or not safetensors."""
    if not file.is_file():
        raise ConfigError(f"{file}: adapter weights not found")
    try:
        return load_file(str(file))
    except Exception as e:  # safetensors raises its own SafetensorError (header/length mismatch) or OSError
        raise ConfigError(f"{file}: not a readable safetensors file ({str(e).splitlines()[0]})") from None


def read_adapter_config(path) -> AdapterConfig:
    file = Path(path) / CONFIG_NAME
    if not file.is_file():
        hint = " (a PEFT folder: load it with peft.PeftModel)" if (Path(path) / "adapter_config.json").is_file() else ""
        raise ConfigError(f"{file}: adapter config not found{hint}")
    data = read_json(file)
    if not isinstance(data, dict) or "orchmoe_adapter" not in data:
        raise ConfigError(f"{file}: not an orchmoe adapter config (key 'orchmoe_adapter' missing)")
    saved = data["orchmoe_adapter"]
    if isinstance(saved, dict) and saved.get("method") == "orchmoe" and "orchmoe_task_router" not in saved:
        # saved before the option existed (every saved config has every field): trained with the softmax reading
        saved = {**saved, "orchmoe_task_router": "softmax"}
    return AdapterConfig.from_dict(saved)


def load_adapters(base_model: nn.Module, path) -> MultiAdapterModel:
    model = attach_adapters(base_model, read_adapter_config(path))
    model.load_adapter_weights(path)
    return model
