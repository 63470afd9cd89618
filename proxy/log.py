"""The package's logger: one name, so `serve` and the console configure it in one place."""

from __future__ import annotations

import logging

log = logging.getLogger("gatewatch")
