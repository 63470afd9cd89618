"""The gateway is headless: importing it loads no console, no Textual and no Rich (style guide, habit 2).

The static side of the same rule is the import-linter contract in pyproject.toml (`lint-imports` in .ci/run);
this test catches what a static graph cannot see, such as an import made by a third-party package."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import importlib, pkgutil, sys
import proxy, proxy.edge.server, proxy.store
for m in pkgutil.walk_packages(proxy.__path__, "proxy."):
    importlib.import_module(m.name)
print(sorted(k for k in sys.modules if k.split(".")[0] in ("console", "textual", "rich")))
"""


def test_importing_every_proxy_module_leaves_the_console_textual_and_rich_unloaded():
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_the_probe_would_see_textual_if_the_gateway_loaded_it():
    probe = "import textual.app\n" + PROBE
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    assert "'textual'" in out.stdout
