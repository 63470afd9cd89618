"""The command a user pastes to point Claude Code at this gateway."""

from __future__ import annotations

from proxy import config as cfg


def usage_hint(url: str, config: cfg.Config, model: str | None = None) -> str:
    """Never shows the token itself: it names the variable that holds it. `model`: the first target's model
    when the gateway is not this config's (a viewer's)."""
    model = model or (config.targets[0].model if config.targets else "gemini-2.5-flash")
    token = "ANTHROPIC_AUTH_TOKEN=$GATEWATCH_TOKEN " if config.gateway.auth_token else ""
    # a pattern (a passthrough target's `*`) is no model to ask for: Claude Code keeps its own choice then
    pick = "" if any(c in model for c in "*?[") else f"ANTHROPIC_MODEL={model} "
    # a gateway bound to every address (0.0.0.0, ::) is reached on this machine at loopback: the bind-all
    # address is no place a client can connect to
    for every, loopback in (("//0.0.0.0:", "//127.0.0.1:"), ("//[::]:", "//[::1]:")):
        url = url.replace(every, loopback)
    return f"ANTHROPIC_BASE_URL={url} {token}{pick}claude"
