"""Tk-Instruct-style prompts. The prompt never contains the task's name or id: OrchMoE claims to need neither, so
the task identity may only reach it through the definition and the input (mttl prefixes the task name; we don't)."""
from __future__ import annotations

PUNCTUATION = ".!?:;"


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text[-1] in PUNCTUATION else text + "."


def build_prompt(definition: str, input_text: str, positive_examples: list[dict] | None = None) -> str:
    parts = [f"Definition: {_sentence(definition)}\n\n"]
    for i, ex in enumerate(positive_examples or [], 1):
        parts.append(f"Positive Example {i} -\nInput: {ex['input'].strip()}\nOutput: {ex['output'].strip()}\n\n")
    parts.append(f"Input: {input_text.strip()}\nOutput:")
    return "".join(parts)
