"""Named prompt formats for Super-NI-style tasks (definition, k positive examples, the instance input).

None of them contains the task's name or id: OrchMoE claims to need neither, so the task identity may only reach it
through the definition and the input (mttl prefixes the task name; `mttl_ni` is mttl's format without it).

- `definition`: this project's own compact layout (the default; the demo's tiny bases are pretrained on it).
- `tk_instruct`: Tk-Instruct's "def + pos k" encoding (yizhongw/Tk-Instruct `src/ni_collator.py`), the Super-NI
  paper's; k = `num_pos_examples`. Tk-Instruct drops trailing examples that would overflow the token budget; the
  sampler has no tokenizer, so all k are written and the collator cuts the prompt's beginning if it is too long.
- `mttl_ni`: microsoft/mttl's NI reader (used for MHR) without its `"{task name}. "` prefix; it differs from
  `tk_instruct` only in the blank line after each positive example.
docs/data.md shows each one verbatim (tests/data/test_prompts.py checks the doc against this code).
"""
from __future__ import annotations

import string

PUNCTUATION = ".!?:;"  # `definition`'s sentence ends; the published formats test string.punctuation


def _sentence(text: str, marks: str = PUNCTUATION) -> str:
    text = text.strip()
    return text if not text or text[-1] in marks else text + "."


def _definition(definition: str, input_text: str, examples: list[dict]) -> str:
    parts = [f"Definition: {_sentence(definition)}\n\n"]
    for i, ex in enumerate(examples, 1):
        parts.append(f"Positive Example {i} -\nInput: {ex['input'].strip()}\nOutput: {ex['output'].strip()}\n\n")
    parts.append(f"Input: {input_text.strip()}\nOutput:")
    return "".join(parts)


def _published(definition: str, input_text: str, examples: list[dict], blank_after_example: bool) -> str:
    p = string.punctuation
    parts = [f"Definition: {_sentence(definition, p)}\n\n"]
    for i, ex in enumerate(examples, 1):
        parts.append(f" Positive Example {i} -\nInput: {_sentence(ex['input'], p)}\n"
                     f" Output: {_sentence(ex['output'], p)}\n" + ("\n" if blank_after_example else ""))
    parts.append(f"Now complete the following example -\nInput: {_sentence(input_text, p)}\nOutput: ")
    return "".join(parts)


FORMATS = {
    "definition": _definition,
    "tk_instruct": lambda d, x, ex: _published(d, x, ex, blank_after_example=True),
    "mttl_ni": lambda d, x, ex: _published(d, x, ex, blank_after_example=False),
}


def build_prompt(definition: str, input_text: str, positive_examples: list[dict] | None = None,
                 prompt_format: str = "definition") -> str:
    if prompt_format not in FORMATS:
        from orchmoe.errors import ConfigError

        raise ConfigError(f"prompt_format={prompt_format!r} is not one of {', '.join(FORMATS)}")
    return FORMATS[prompt_format](definition, input_text, list(positive_examples or []))


EXAMPLE = {  # the fixed example docs/data.md shows every format with
    "definition": "Answer the question with yes or no",
    "positive_examples": [{"input": "Is the sky blue?", "output": "yes"},
                          {"input": "Is fire cold?", "output": "no."}],
    "input": "Is water wet?",
}


def render_examples() -> str:
    """The docs' block: each format on EXAMPLE with its two positive examples (k = 2), verbatim."""
    out = []
    for name in FORMATS:
        prompt = build_prompt(EXAMPLE["definition"], EXAMPLE["input"], EXAMPLE["positive_examples"], name)
        out.append(f"`{name}` (k = 2):\n\n```\n{prompt}\n```\n")
    return "\n".join(out)


if __name__ == "__main__":
    print(render_examples(), end="")
