"""Translate captured Claude Code requests (files holding method, path_qs, headers, body) and check that the
strict fake would accept each Gemini body, for both schema modes, on a gemini-2.5 and a gemini-3 model.

    python scripts/check_captures.py DIR [DIR…]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proxy.config import TargetConfig  # noqa: E402
from proxy.providers.gemini import GeminiProvider  # noqa: E402
from proxy.translate import request as treq  # noqa: E402
from tests import strict  # noqa: E402

MODELS = ("gemini-2.5-flash", "gemini-3-pro-preview")


def main(dirs: list[str]) -> int:
    bad = 0
    n = 0
    for model in MODELS:
        provider = GeminiProvider(TargetConfig(name="t", provider="gemini", model=model, api_key="k"))
        b, k = check(dirs, model, provider)
        bad, n = bad + b, n + k
    print(f"{n - bad}/{n} accepted")
    return 1 if bad else 0


def check(dirs: list[str], model: str, provider: GeminiProvider) -> tuple[int, int]:
    bad = 0
    n = 0
    for d in dirs:
        for f in sorted(Path(d).glob("*.json")):
            cap = json.loads(f.read_text())
            body = cap.get("body")
            if not isinstance(body, dict):
                print(f"skip {f.name}: {cap.get('method')} without a body")
                continue
            count = "count_tokens" in cap.get("path_qs", "")
            for mode in ("openapi", "json_schema"):
                n += 1
                out = treq.translate(body, treq.Target(model, 8192, mode)).body
                if count:
                    problem = strict.validate("gemini", "countTokens", provider.count_body(out))
                else:
                    problem = strict.validate("gemini", "generateContent", out, model)
                status = "ok " if problem is None else "BAD"
                bad += problem is not None
                print(
                    f"{status} {model} {f.name} [{mode}] {len(json.dumps(out))} bytes"
                    f"{'' if problem is None else ': ' + problem}"
                )
    return bad, n


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
