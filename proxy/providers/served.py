"""The models a gateway serves: which model names may reach an upstream URL, and which name a metric or an
OpenTelemetry attribute may carry.

A client chooses the model string it sends; nothing a client chooses may change an upstream path or query, or
add a metric series or a per-model entry of gateway state. So a model name is checked before it is used in a
URL (one path segment of `[A-Za-z0-9._@-]`, quoted where it goes), and a model name becomes a label only when
the config serves it (a target's model) or the price table knows it (a finite list, installed with gatewatch);
every other name is folded into `other`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote

from proxy.record.pricing import find

NAME = re.compile(r"[A-Za-z0-9._@-]+")
"""what a model name passed to an upstream URL may hold: one path segment, nothing that starts a query"""
OTHER = "other"
"""the label of every model name the gateway does not serve"""


def well_formed(model: str) -> bool:
    """One path segment of letters, digits, `.`, `_`, `@`, `-`; never `.` or `..`."""
    return NAME.fullmatch(model) is not None and model.strip(".") != ""


def segment(model: str) -> str:
    """The model as one URL path segment: anything but unreserved characters and `@` percent-quoted, so even
    a configured name holding `/`, `?` or `#` stays inside its segment."""
    return quote(model, safe="@")


def known(model: str) -> str | None:
    """The price table's own name for `model` (a finite list), or None when the table does not know it."""
    found = find(model)
    return found[1].id if found is not None else None


class Served:
    """The model names of one config: its targets' models (and names), and what the price table knows."""

    def __init__(self, models: Iterable[str]) -> None:
        self.models = frozenset(m for m in models if m and m != "*")

    def replayable(self, model: str) -> bool:
        """A replay may switch a target to this model: well formed, and a target's model or one the price
        table knows under exactly this name."""
        return well_formed(model) and (model in self.models or known(model) == model)

    def label(self, *names: str | None) -> str:
        """The first of `names` the gateway serves, as a label: itself when a target serves it, else the
        price table's name for it; `other` when none is served."""
        for name in names:
            if not name:
                continue
            if name in self.models:
                return name
            if len(name) <= 200 and (table := known(name)) is not None:
                return table
        return OTHER
