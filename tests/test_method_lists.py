"""Every place that lists the methods agrees with the registry (orchmoe.adapters.config.METHODS): adding a method
without its router, schema entry, table label or paper setting fails here instead of going untested."""
from __future__ import annotations

from pathlib import Path

import yaml

from orchmoe.adapters.config import METHODS
from orchmoe.adapters.methods import ROUTERS
from orchmoe.report.figures import ROUTED
from orchmoe.report.tables import LABELS

REPO = Path(__file__).resolve().parents[1]


def paper_settings() -> dict:
    try:  # issue 11 moves the paper settings into their own module
        from orchmoe.adapters.paper import SETTINGS
    except ImportError:
        from orchmoe.adapters.cli import PAPER as SETTINGS
    return SETTINGS


def test_every_method_list_matches_the_registry():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    enum = schema["properties"]["methods"]["additionalProperties"]["properties"]["method"]["enum"]
    assert enum == list(METHODS), "workflow/schemas/config.schema.yaml methods.*.method enum"
    assert set(ROUTERS) == set(METHODS), "adapters/methods/__init__.py ROUTERS"
    assert set(METHODS) <= set(LABELS), "report/tables.py LABELS (display names)"
    assert set(ROUTED) <= set(METHODS) - {"lora"}, "report/figures.py ROUTED"
    assert set(paper_settings()) == set(METHODS), "the paper settings (adapters/paper.py SETTINGS or cli.py PAPER)"
