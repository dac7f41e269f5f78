"""Tiny T5 / Llama / GPT-2 / GLM-layout / Baichuan-layout models built from configs (no download) and a byte-level tokenizer.

They stand in for the papers' pretrained T5 and decoder-only models in tests and in the CPU demo
(where they are first pretrained on the built-in suite's primitive-skills split).
"""
from __future__ import annotations

import torch
from transformers import (
    ByT5Tokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    T5Config,
    T5ForConditionalGeneration,
)

BYTE_VOCAB = 384  # ByT5Tokenizer: 3 specials + 256 bytes + 125 extra ids

ARCHS = ("t5", "llama", "gpt2", "glm", "baichuan")


def byte_tokenizer(padding_side: str = "right") -> ByT5Tokenizer:
    """ByT5's tokenizer needs no files; pad=0, eos=1, unk=2."""
    tok = ByT5Tokenizer()
    tok.padding_side = padding_side
    return tok


def tiny_config(arch: str, d_model: int = 64, n_layers: int = 2, n_heads: int = 4, d_ff: int | None = None,
                vocab_size: int = BYTE_VOCAB, max_positions: int = 512):
    if d_ff is None:
        d_ff = (4 if arch == "glm" else 2) * d_model
    if arch == "t5":
        return T5Config(vocab_size=vocab_size, d_model=d_model, d_kv=d_model // n_heads, d_ff=d_ff,
                        num_layers=n_layers, num_decoder_layers=n_layers, num_heads=n_heads,
                        feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.0,
                        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    if arch in ("llama", "baichuan"):  # baichuan: LLaMA with q, k, v packed into W_pack (orchmoe/models/baichuan.py)
        from .baichuan import BaichuanLayoutConfig

        return (BaichuanLayoutConfig if arch == "baichuan" else LlamaConfig)(vocab_size=vocab_size, hidden_size=d_model, intermediate_size=d_ff,
                           num_hidden_layers=n_layers, num_attention_heads=n_heads, num_key_value_heads=n_heads,
                           max_position_embeddings=max_positions, pad_token_id=0, bos_token_id=1,
                           eos_token_id=1, tie_word_embeddings=False)
    if arch == "gpt2":
        return GPT2Config(vocab_size=vocab_size, n_embd=d_model, n_layer=n_layers, n_head=n_heads,
                          n_inner=d_ff, n_positions=max_positions, pad_token_id=0, bos_token_id=1,
                          eos_token_id=1, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    if arch == "glm":  # the GLM-10B layout (fused query_key_value), orchmoe/models/glm.py
        from .glm import GLMLayoutConfig

        if d_ff != 4 * d_model:
            from orchmoe.errors import ConfigError

            raise ConfigError(f"arch glm: d_ff={d_ff} must be 4 * d_model = {4 * d_model} (the GLM layout)")
        return GLMLayoutConfig(vocab_size=vocab_size, hidden_size=d_model, num_layers=n_layers,
                               num_attention_heads=n_heads, max_sequence_length=max_positions, pad_token_id=0,
                               bos_token_id=1, eos_token_id=1)
    raise ValueError(f"arch: unknown tiny architecture {arch!r}; choose one of {ARCHS}")


def build_tiny(arch: str, seed: int = 0, **kwargs) -> torch.nn.Module:
    """A randomly initialised tiny model (deterministic for a seed)."""
    cfg = tiny_config(arch, **kwargs)
    from .baichuan import BaichuanLayoutForCausalLM
    from .glm import GLMLayoutForCausalLM

    cls = {"t5": T5ForConditionalGeneration, "llama": LlamaForCausalLM, "gpt2": GPT2LMHeadModel,
           "glm": GLMLayoutForCausalLM, "baichuan": BaichuanLayoutForCausalLM}[arch]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = cls(cfg)
    model.generation_config.pad_token_id = 0
    model.generation_config.eos_token_id = 1
    return model.eval()
