"""Parameter accounting (the adapter-to-base ratio of OrchMoE Table 4) without materialising weights."""
from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, LlamaConfig, T5Config

from .config import AdapterConfig

# Configs written out here so counting needs no download (values from the models' published config.json).
PRESETS = {
    "t5-v1_1-xxl-lm-adapt": lambda: T5Config(d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_decoder_layers=24,
                                             num_heads=64, vocab_size=32128, feed_forward_proj="gated-gelu",
                                             tie_word_embeddings=False),
    "smollm2-135m": lambda: LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                                        num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
                                        tie_word_embeddings=True, max_position_embeddings=8192),
}


def build_on_meta(config) -> torch.nn.Module:
    cls = AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM
    with torch.device("meta"):
        return cls.from_config(config)


def count_parameters(config, cfg: AdapterConfig | dict) -> dict:
    """Trainable (adapter + router) parameters and their ratio to the base, for an HF config (meta device)."""
    from .model import attach_adapters

    base = build_on_meta(config)
    n_base = sum(p.numel() for p in base.parameters())
    model = attach_adapters(base, cfg)
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_router = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and ".bank." not in f".{n}")
    return {"method": model.cfg.method, "trainable": n_trainable, "adapter": n_trainable - n_router,
            "router": n_router, "base": n_base, "ratio_percent": 100.0 * n_trainable / n_base}
