"""The command a user pastes to point Claude Code at this gateway."""

from __future__ import annotations

from textual.message import Message

from proxy import config as cfg
from proxy.record import Record
from proxy.translate.request_notes import SAFEGUARDS_HELP

NO_TOKEN = "gatewatch"
"""what Claude Code sends as its credential to a gateway without a token: without one it says "Not logged
in · Please run /login" before it calls at all; any value does"""


def client_credential(config: cfg.Config) -> str:
    """The credential assignment Claude Code needs (never the token itself: the variable that holds it); ""
    when the first target forwards the client's own Anthropic key (a passthrough without a key of its own)."""
    if config.gateway.auth_token:
        return "ANTHROPIC_AUTH_TOKEN=$GATEWATCH_TOKEN"
    first = config.targets[0] if config.targets else None
    if first is not None and first.forwards_client_key:
        return ""
    return f"ANTHROPIC_AUTH_TOKEN={NO_TOKEN}"


def usage_hint(url: str, config: cfg.Config, width: int | None = None, model: str | None = None) -> str:
    """Never shows the token itself: it names the variable that holds it. Longer than `width`, it is the
    `gatewatch claude` line that sets the same (when that command would read the same config). `model`: the
    first target's model when the gateway is not this config's (a viewer's)."""
    full = _paste_line(url, config, model)
    if width is None or len(full) <= width:
        return full
    url = _reachable(url)
    if config.source in ("environment", "gatewatch.toml"):
        short = f"gatewatch --attach {url} claude"
    elif config.source.endswith((".toml", ".yaml", ".yml", ".json")):
        short = f"gatewatch --config {config.source} --attach {url} claude"
    else:
        return full
    return short if len(short) <= width else full


def _reachable(url: str) -> str:
    # a gateway bound to every address (0.0.0.0, ::) is reached on this machine at loopback: the bind-all
    # address is no place a client can connect to
    for every, loopback in (("//0.0.0.0:", "//127.0.0.1:"), ("//[::]:", "//[::1]:")):
        url = url.replace(every, loopback)
    return url


def _paste_line(url: str, config: cfg.Config, model: str | None) -> str:
    model = model or (config.targets[0].model if config.targets else cfg.DEFAULT_MODEL)
    credential = client_credential(config)
    token = f"{credential} " if credential else ""
    # a pattern (a passthrough target's `*`) is no model to ask for: Claude Code keeps its own choice then
    pick = "" if any(c in model for c in "*?[") else f"ANTHROPIC_MODEL={model} "
    return f"ANTHROPIC_BASE_URL={_reachable(url)} {token}{pick}claude"


def dropped_safeguards(rec: Record) -> bool:
    """The call carried Claude Code's auto-mode safeguards, which Gemini can't run (a `field-dropped` note)."""
    return any(n.kind == "field-dropped" and n.data.get("field") == "safeguards" for n in rec.notes)


class AutoModeNotice(Message):
    """The first call seen with auto mode's safeguards: what it means, once per console."""

    text = SAFEGUARDS_HELP
