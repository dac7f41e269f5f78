"""The registry (adapters/registry.py) is the only list of methods: every reader derives from it, and the workflow's
torch-free view of it (the method file names) agrees with what the method files register."""
from __future__ import annotations

from pathlib import Path

import yaml

from orchmoe.adapters import registry
from orchmoe.adapters.config import METHODS
from orchmoe.adapters.methods import ROUTERS
from orchmoe.adapters.paper import settings
from orchmoe.report.figures import routed
from orchmoe.report.tables import labels

REPO = Path(__file__).resolve().parents[1]


def test_every_reader_lists_the_registry():
    names = registry.methods()
    assert names[:6] == ("lora", "moe_lora", "poly", "mhr", "orchmoe", "moa")  # the papers' order in tables
    assert set(registry.method_names()) == set(names), "a method file whose name is not its registered method"
    assert tuple(METHODS) == names and set(ROUTERS) == set(names) and set(settings()) == set(names)
    assert list(labels())[1:] == list(names) and set(routed()) == set(names) - {"lora"}
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    method = schema["properties"]["methods"]["additionalProperties"]["properties"]["method"]
    assert "enum" not in method, "the schema must not retype the method list (common.smk checks the registry's)"


def test_a_spec_whose_name_is_not_its_module_is_refused():
    import pytest

    from orchmoe.adapters.methods.lora import LoRARouter
    from orchmoe.errors import ConfigError

    with pytest.raises(ConfigError, match="a method's name is its module's name"):
        registry.register_method(registry.MethodSpec(name="other", label="Other", router=LoRARouter))
