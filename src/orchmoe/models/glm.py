"""The GLM layout (Du et al., 2022: GLM-2B / GLM-10B, THUDM's `modeling_glm.py`) as a small native transformers model.

Why it exists: the paper's GLM checkpoints are remote-code hub models, and transformers 5 maps `model_type: glm` to
GLM-4 (separate q/k/v projections). This file reproduces the GLM-10B module tree and shapes -- pre-LN blocks with a
fused `attention.query_key_value` (d -> 3d, contiguous q | k | v), `attention.dense`, GeLU `mlp.dense_h_to_4h` /
`mlp.dense_4h_to_h`, learned position and block-position embeddings, output projection tied to the word embeddings --
so that (1) `orchmoe params` counts GLM-10B / GLM-2B on the meta device from `architectures/glm-*.json`, and (2) CI
tests every method on a tiny random-init twin of the layout (`build_tiny("glm")`), forward and generate.

Inputs: given GLM's 2-D position ids (B, 2, L) it takes what THUDM's `GLMForConditionalGeneration` takes
(orchmoe/data/glm_format.py: position + block-position embeddings, an explicit (B, 1, L, T) attention mask,
labels aligned with the logits, `generation_attention_mask` sliced per decoding step); that is how the collator and
evaluation feed it. Without them it is a plain causal LM (block positions 0, labels shifted), as the layout tests
call it. docs/methods.md (ambiguity table, row 20) says how the paper's GLM checkpoints themselves are loaded.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    DynamicCache,
    GenerationMixin,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import CausalLMOutputWithPast


class GLMLayoutConfig(PretrainedConfig):
    model_type = "orchmoe_glm"
    attribute_map = {"num_hidden_layers": "num_layers"}

    def __init__(self, vocab_size: int = 50304, hidden_size: int = 4096, num_layers: int = 48,
                 num_attention_heads: int = 64, max_sequence_length: int = 1025, layernorm_epsilon: float = 1e-5,
                 initializer_range: float = 0.02, tie_word_embeddings: bool = True, **kwargs):
        self.vocab_size, self.hidden_size, self.num_layers = vocab_size, hidden_size, num_layers
        self.num_attention_heads, self.max_sequence_length = num_attention_heads, max_sequence_length
        self.layernorm_epsilon, self.initializer_range = layernorm_epsilon, initializer_range
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)


class SelfAttention(nn.Module):
    def __init__(self, cfg: GLMLayoutConfig, layer_idx: int):
        super().__init__()
        self.n_heads, self.layer_idx = cfg.num_attention_heads, layer_idx
        self.query_key_value = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size)
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(self, x, allowed, cache):
        B, L, d = x.shape
        q, k, v = (t.view(B, L, self.n_heads, -1).transpose(1, 2) for t in self.query_key_value(x).split(d, dim=-1))
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        return self.dense(out.transpose(1, 2).reshape(B, L, d))


class MLP(nn.Module):
    def __init__(self, cfg: GLMLayoutConfig):
        super().__init__()
        self.dense_h_to_4h = nn.Linear(cfg.hidden_size, 4 * cfg.hidden_size)
        self.dense_4h_to_h = nn.Linear(4 * cfg.hidden_size, cfg.hidden_size)

    def forward(self, x):
        return self.dense_4h_to_h(F.gelu(self.dense_h_to_4h(x)))


class GLMBlock(nn.Module):
    def __init__(self, cfg: GLMLayoutConfig, layer_idx: int):
        super().__init__()
        self.input_layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layernorm_epsilon)
        self.attention = SelfAttention(cfg, layer_idx)
        self.post_attention_layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layernorm_epsilon)
        self.mlp = MLP(cfg)

    def forward(self, hidden_states, allowed=None, cache=None):
        h = hidden_states + self.attention(self.input_layernorm(hidden_states), allowed, cache)
        return h + self.mlp(self.post_attention_layernorm(h))


class GLMStack(nn.Module):
    def __init__(self, cfg: GLMLayoutConfig):
        super().__init__()
        self.position_embeddings = nn.Embedding(cfg.max_sequence_length, cfg.hidden_size)
        self.block_position_embeddings = nn.Embedding(cfg.max_sequence_length, cfg.hidden_size)
        self.layers = nn.ModuleList(GLMBlock(cfg, i) for i in range(cfg.num_layers))
        self.final_layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layernorm_epsilon)


class GLMModel(nn.Module):
    def __init__(self, cfg: GLMLayoutConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.transformer = GLMStack(cfg)


class GLMLayoutForCausalLM(PreTrainedModel, GenerationMixin):
    config_class = GLMLayoutConfig
    base_model_prefix = "glm"
    _no_split_modules = ["GLMBlock"]
    _supports_sdpa = True

    def __init__(self, config: GLMLayoutConfig):
        super().__init__(config)
        self.glm = GLMModel(config)
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def get_input_embeddings(self):
        return self.glm.word_embeddings

    def set_input_embeddings(self, value):
        self.glm.word_embeddings = value

    def forward(self, input_ids=None, attention_mask=None, labels=None, cache=None, use_cache=None,
                inputs_embeds=None, position_ids=None, output_hidden_states=None, **kwargs):
        if cache is None and use_cache:
            cache = DynamicCache(config=self.config)
        x, allowed, shift = self._embed(input_ids, attention_mask, inputs_embeds, position_ids, cache)
        return self._run(x, allowed, labels, cache, output_hidden_states, shift)

    def final_hidden(self, input_ids=None, attention_mask=None, inputs_embeds=None, position_ids=None):
        """The LM head's input (final layer norm applied) and whether labels are shifted against it: the training
        loss gathers the target positions from it, so the logits of prompt positions are never computed."""
        x, allowed, shift = self._embed(input_ids, attention_mask, inputs_embeds, position_ids, None)
        for layer in self.glm.transformer.layers:
            x = layer(x, allowed, None)
        return self.glm.transformer.final_layernorm(x), shift

    def head_logits(self, hidden):
        return F.linear(hidden, self.glm.word_embeddings.weight)

    def _embed(self, input_ids, attention_mask, inputs_embeds, position_ids, cache):
        """Input embeddings, the (B, 1, L, T) attention mask, and whether labels are shifted (the plain layout)."""
        stack = self.glm.transformer
        x = self.glm.word_embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        B, L = x.shape[:2]
        past = cache.get_seq_length() if cache is not None else 0
        if position_ids is not None and position_ids.dim() == 3:  # GLM's own inputs
            return self._glm_embed(x, position_ids, attention_mask, past) + (False,)
        mask = attention_mask if attention_mask is not None else torch.ones(B, past + L, dtype=torch.long,
                                                                            device=x.device)
        # Positions count real tokens only, so left padding does not shift them.
        positions = (mask.long().cumsum(-1) - 1).clamp_min(0)[:, -L:]
        x = x + stack.position_embeddings(positions) + stack.block_position_embeddings(torch.zeros_like(positions))
        q_pos = torch.arange(past, past + L, device=x.device)
        k_pos = torch.arange(past + L, device=x.device)[None, :]
        allowed = (k_pos <= q_pos[:, None])[None] & mask.bool()[:, None, :]  # (B, L, T)
        allowed = (allowed | (k_pos == q_pos[:, None])[None])[:, None]  # a padded query attends itself: no NaN rows
        return x, allowed, True

    def _glm_embed(self, x, position_ids, attention_mask, past):
        """As THUDM's GLMStack: position + block-position embeddings, the mask as given (a 2-D one is a padding
        mask, none is causal); labels are not shifted (the layout already puts token i+1 under position i)."""
        stack, L = self.glm.transformer, x.shape[1]
        x = x + stack.position_embeddings(position_ids[:, 0]) + stack.block_position_embeddings(position_ids[:, 1])
        if attention_mask is None:
            allowed = torch.ones(L, past + L, dtype=torch.bool, device=x.device).tril(past)[None, None]
        elif attention_mask.dim() == 2:
            allowed = attention_mask.bool()[:, None, None, -(past + L):]
        else:
            allowed = attention_mask.bool()[..., -(past + L):]
        return x, allowed

    def _run(self, x, allowed, labels, cache, output_hidden_states, shift: bool):
        stack, hidden = self.glm.transformer, []
        for layer in stack.layers:
            hidden.append(x)
            x = layer(x, allowed, cache)
        logits = self.head_logits(stack.final_layernorm(x))
        loss = None
        if labels is not None:
            if shift:
                logits_, labels = logits[:, :-1], labels[:, 1:]
            else:
                logits_ = logits
            loss = F.cross_entropy(logits_.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits, past_key_values=cache,
                                      hidden_states=tuple(hidden) + (x,) if output_hidden_states else None)

    def prepare_inputs_for_generation(self, input_ids, cache=None, position_ids=None,
                                      generation_attention_mask=None, **kwargs):
        """GLM inputs: as the remote code, the step's rows of position_ids and generation_attention_mask (which
        span the whole generation), with a KV cache where the remote code keeps `mems`."""
        if generation_attention_mask is None:
            return super().prepare_inputs_for_generation(input_ids, cache=cache, position_ids=position_ids, **kwargs)
        L = input_ids.shape[1]
        past = cache.get_seq_length() if cache is not None else 0
        return {"input_ids": input_ids[:, past:], "position_ids": position_ids[:, :, past:L],
                "attention_mask": generation_attention_mask[:, :, past:L, :L], "cache": cache,
                "use_cache": kwargs.get("use_cache")}


AutoConfig.register(GLMLayoutConfig.model_type, GLMLayoutConfig, exist_ok=True)
AutoModelForCausalLM.register(GLMLayoutConfig, GLMLayoutForCausalLM, exist_ok=True)
