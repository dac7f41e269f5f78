"""Named prompt formats: the published ones exactly, no task name in any, and docs/data.md shows the code's output."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchmoe.data.prompts import FORMATS, build_prompt, render_examples
from orchmoe.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
EX = [{"input": "Is the sky blue?", "output": "yes"}, {"input": "2 + 2", "output": "4"}]


def test_tk_instruct_def_plus_pos_k_is_tk_instructs_text():
    # yizhongw/Tk-Instruct src/ni_collator.py: definition + "." + blank line; " Positive Example i -", "Input: ..."
    # + "." if no punctuation, " Output: ..." likewise, blank line; then the instance; the prompt ends in "Output: ".
    assert build_prompt("Answer yes or no", "Is water wet", EX, "tk_instruct") == (
        "Definition: Answer yes or no.\n\n"
        " Positive Example 1 -\nInput: Is the sky blue?\n Output: yes.\n\n"
        " Positive Example 2 -\nInput: 2 + 2.\n Output: 4.\n\n"
        "Now complete the following example -\nInput: Is water wet.\nOutput: ")


def test_mttl_ni_is_mttls_reader_without_the_task_name():
    assert build_prompt("Answer yes or no.", "Is water wet?", EX[:1], "mttl_ni") == (
        "Definition: Answer yes or no.\n\n"
        " Positive Example 1 -\nInput: Is the sky blue?\n Output: yes.\n"
        "Now complete the following example -\nInput: Is water wet?\nOutput: ")
    assert build_prompt("d", "x", [], "mttl_ni") == build_prompt("d", "x", [], "tk_instruct")  # k = 0: the same


def test_definition_is_todays_layout():
    assert build_prompt("Copy it", "abc") == build_prompt("Copy it", "abc", None, "definition") == \
        "Definition: Copy it.\n\nInput: abc\nOutput:"


def test_unknown_format_names_it():
    with pytest.raises(ConfigError, match="prompt_format='alpaca'"):
        build_prompt("d", "x", [], "alpaca")


def test_docs_show_each_format_verbatim():
    text = (REPO / "docs" / "data.md").read_text()
    block = text.split("<!-- prompt-formats:start -->\n")[1].split("<!-- prompt-formats:end -->")[0]
    assert block == render_examples(), "regenerate with `python -m orchmoe.data.prompts`"
    assert all(f"`{name}`" in block for name in FORMATS)
