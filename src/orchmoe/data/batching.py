"""Model-ready batches for encoder-decoder and decoder-only models.

Encoder-decoder: input_ids / attention_mask of the prompt, labels = target + eos padded with -100.
Decoder-only, training: prompt + " " + target + eos, right padded, loss on target tokens only.
Decoder-only, generation: the prompt only, left padded. Every batch carries prompt_mask (routers read prompt
tokens only), task_ids and domain_ids (-1 where unknown). Prompts longer than max_source_length lose their
beginning (the instance input and "Output:" sit at the end); targets longer than max_target_length are cut.
Both are counted in `collator.truncated` so the trainer can report them — never silently.
GLM (input_format "glm"): GLM's own blank-infilling layout with 2-D position ids, in orchmoe/data/glm_format.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

IGNORE = -100


@dataclass
class Collator:
    tokenizer: object
    is_encoder_decoder: bool
    max_source_length: int = 512
    max_target_length: int = 64
    mode: str = "train"  # "train" or "generate"
    input_format: str = "plain"  # "plain" or "glm" (glm_format.input_format(model.config))
    truncated: dict = field(default_factory=lambda: {"prompts": 0, "targets": 0})

    def __post_init__(self):
        if self.mode not in ("train", "generate"):
            raise ValueError(f"mode={self.mode!r}: must be 'train' or 'generate'")
        if self.input_format not in ("plain", "glm"):
            raise ValueError(f"input_format={self.input_format!r}: must be 'plain' or 'glm'")
        tok = self.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.eos_id = tok.eos_token_id

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _prompt(self, text: str) -> list[int]:
        # Decoder-only: the target brings its own leading space, so a format ending in "Output: " loses the space
        # (Tk-Instruct's T5 tokenizer drops it too); otherwise BPE would see "Output:  target".
        ids = self._encode(text if self.is_encoder_decoder else text.rstrip())
        limit = self.max_source_length - (1 if self.is_encoder_decoder else 0)
        if len(ids) > limit:
            self.truncated["prompts"] += 1
            ids = ids[len(ids) - limit:]
        return ids + ([self.eos_id] if self.is_encoder_decoder else [])

    def _target(self, text: str) -> list[int]:
        ids = self._encode(text if self.is_encoder_decoder else " " + text)
        if len(ids) > self.max_target_length - 1:
            self.truncated["targets"] += 1
            ids = ids[: self.max_target_length - 1]
        return ids + [self.eos_id]

    def _pad(self, rows: list[list[int]], value: int, left: bool = False) -> torch.Tensor:
        width = max(len(r) for r in rows)
        return torch.tensor([[value] * (width - len(r)) + r if left else r + [value] * (width - len(r)) for r in rows])

    def __call__(self, records: list[dict]) -> dict:
        if self.input_format == "glm":
            from . import glm_format

            return glm_format.collate(self, records)
        prompts = [self._prompt(r["prompt"]) for r in records]
        batch = {
            "task_ids": torch.tensor([r.get("task_id", -1) if r.get("task_id") is not None else -1 for r in records]),
            "domain_ids": torch.tensor([r.get("domain_id", -1) if r.get("domain_id") is not None else -1
                                        for r in records]),
        }
        if self.is_encoder_decoder or self.mode == "generate":
            left = not self.is_encoder_decoder
            batch["input_ids"] = self._pad(prompts, self.pad_id, left=left)
            batch["attention_mask"] = self._pad([[1] * len(p) for p in prompts], 0, left=left)
            batch["prompt_mask"] = batch["attention_mask"].clone()
            if self.mode == "train":
                batch["labels"] = self._pad([self._target(r["target"]) for r in records], IGNORE)
            return batch
        targets = [self._target(r["target"]) for r in records]
        seqs = [p + t for p, t in zip(prompts, targets)]
        batch["input_ids"] = self._pad(seqs, self.pad_id)
        batch["attention_mask"] = self._pad([[1] * len(s) for s in seqs], 0)
        batch["labels"] = self._pad([[IGNORE] * len(p) + t for p, t in zip(prompts, targets)], IGNORE)
        batch["prompt_mask"] = self._pad([[1] * len(p) + [0] * len(t) for p, t in zip(prompts, targets)], 0)
        return batch


def make_collator(tokenizer, is_encoder_decoder: bool, max_source_length: int = 512, max_target_length: int = 64,
                  mode: str = "train", input_format: str = "plain") -> Collator:
    return Collator(tokenizer, is_encoder_decoder, max_source_length, max_target_length, mode,
                    input_format=input_format)
