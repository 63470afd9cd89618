"""`gatewatch claude [args]`: Claude Code (`claude` on PATH) run against this gateway with the environment the
chosen target needs: base URL, a credential, the model id, the window and output cap to assume, discovery on."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from console.hint import NO_TOKEN
from proxy import config as cfg
from proxy.exchange import discovery
from proxy.translate.catalog import limits

INSTALL = "npm install -g @anthropic-ai/claude-code"


HELP = """usage: gatewatch [--config F | --attach URL] claude [--target NAME] [claude's own arguments]

Runs Claude Code (`claude` on PATH) through the gateway that listens where the config says (or at --attach
URL), with the environment the target needs: ANTHROPIC_BASE_URL, a credential (the gateway's token when it
has one), ANTHROPIC_MODEL (the target's id in the gateway's /v1/models, claude-gw-NAME, which routes to it),
CLAUDE_CODE_MAX_CONTEXT_TOKENS and CLAUDE_CODE_MAX_OUTPUT_TOKENS, model discovery on.
The targets, and their caps, are those the running gateway serves (the config's if it does not list them).

  --target NAME   the target to set up for (default: the first)
  everything else goes to Claude Code untouched (`claude --help` lists its own options)

examples:
  gatewatch claude
  gatewatch --attach http://127.0.0.1:8000 claude -p "say hi"
  gatewatch --config g.toml claude --target pro -p "explain this repo"
"""


@dataclass(frozen=True, slots=True)
class Target:
    """What Claude Code's environment needs of a target: the config's, or what a running gateway says."""

    name: str
    provider: str
    model: str
    max_tokens: int | None = None
    own_key: bool = True
    """the target calls with a key of its own (False: a passthrough that forwards the client's Anthropic key)"""

    @classmethod
    def of(cls, t: cfg.TargetConfig) -> Target:
        return cls(t.name, t.provider, t.model, t.max_tokens, not t.forwards_client_key)

    @classmethod
    def listed(cls, d: dict[str, Any]) -> Target:
        """A target as the gateway's identity (`GET /gatewatch`) lists it."""
        cap = d.get("max_tokens")
        return cls(
            str(d.get("name", "?")),
            str(d.get("provider", "?")),
            str(d.get("model", "*")),
            cap if isinstance(cap, int) and not isinstance(cap, bool) else None,
            not d.get("client_key", False),
        )


class NoClaude(Exception):
    """`claude` is not on PATH (the message says how to install it)."""


def target_limits(target: Target) -> tuple[int | None, int | None]:
    """(context window, output cap) Claude Code should assume for calls to `target`: the model's own, the
    output capped by the target's max_tokens. The one place that knows them, so a model-facts table can take
    over here."""
    lim = limits(target.model)
    window = lim.context_window if lim else None
    out = lim.max_output if lim else None
    if target.max_tokens is not None:
        out = min(out, target.max_tokens) if out else target.max_tokens
    return window, out


def model_id(target: Target, targets: Sequence[Target] = ()) -> str | None:
    """The model Claude Code asks for so its calls go to `target`: the gateway's discovery id for it
    (`claude-gw-<target>`, what its /v1/models lists and Claude Code's /model picker keeps, and which routes to
    that target alone, where a model name goes to whichever target serving it comes first); the target's model
    when the id is another target's (two names with one slug); None for a passthrough pattern (`*`): Claude
    Code keeps its own choice. `targets`: all the gateway's, in order, which the ids are given from."""
    if any(c in target.model for c in "*?[") or target.model == "*":
        return None
    listed = list(targets) or [target]
    for served, (kind, i) in discovery.ids(listed, []).items():
        if kind == "target" and listed[i] == target:
            return served
    return target.model


def pick(targets: list[Target], name: str | None, where: str) -> Target:
    """The target named (the first without a name) among `targets`, which `where` describes."""
    if not targets:
        raise cfg.ConfigError(f"{where} has no target: set GEMINI_API_KEY or give --config")
    if name is None:
        return targets[0]
    for t in targets:
        if t.name == name:
            return t
    names = ", ".join(t.name for t in targets)
    raise cfg.ConfigError(f"--target {name}: no such target ({where} has {names})")


def environment(
    config: cfg.Config, url: str, target: Target, base: Mapping[str, str], targets: Sequence[Target] = ()
) -> dict[str, str]:
    """`base` (the caller's environment) with what Claude Code needs to use `target` (one of the gateway's
    `targets`) through the gateway."""
    env = dict(base)
    env["ANTHROPIC_BASE_URL"] = url
    token = config.gateway.auth_token
    if token is not None:
        env.pop("ANTHROPIC_API_KEY", None)  # one credential: Claude Code warns when it is given both
        env["ANTHROPIC_AUTH_TOKEN"] = token.get_secret_value()
    elif target.own_key:
        # any value: without one Claude Code says "Not logged in" before calling (a passthrough to
        # Anthropic with the client's own key keeps the user's credential)
        env.pop("ANTHROPIC_API_KEY", None)
        env["ANTHROPIC_AUTH_TOKEN"] = NO_TOKEN
    model = model_id(target, targets)
    if model is not None:
        env["ANTHROPIC_MODEL"] = model
    window, out = target_limits(target)
    if window:
        env["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] = str(window)
    if out:
        env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] = str(out)
    env["CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY"] = "1"
    return env


def split_target(args: list[str]) -> tuple[str | None, list[str]]:
    """A leading `--target NAME` (or `--target=NAME`) is gatewatch's; everything else is Claude Code's."""
    if args[:1] == ["--target"] and len(args) > 1:
        return args[1], args[2:]
    if args[:1] and args[0].startswith("--target="):
        return args[0].split("=", 1)[1], args[1:]
    return None, args


def run(env: Mapping[str, str], args: list[str]) -> None:
    """Become Claude Code (exec: its terminal, its signals, its exit status)."""
    found = shutil.which("claude", path=env.get("PATH"))
    if found is None:
        raise NoClaude(f"Claude Code (`claude`) is not on PATH: install it with `{INSTALL}`")
    os.execve(found, [found, *args], dict(env))
