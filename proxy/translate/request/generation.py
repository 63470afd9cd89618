"""Gemini's generationConfig: max_tokens within what the target takes, the sampling parameters, the stop
sequences, the thinking config."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxy.translate import request_notes
from proxy.translate.models import ModelFacts
from proxy.translate.notes import Notes
from proxy.translate.request.target import Target
from proxy.translate.request.thinking import thinking_config

MAX_STOP_SEQUENCES = 5
SAMPLING = (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK"))
"""Anthropic's sampling parameter → Gemini's, sent as they are"""


def generation_config(
    req: Mapping[str, Any], target: Target, model: ModelFacts, notes: Notes
) -> tuple[dict[str, Any], bool]:
    """→ (generationConfig, whether the client wants thinking blocks back)."""
    gen: dict[str, Any] = {}
    cap = _max_tokens(req, target, model, gen, notes)
    for a, g in SAMPLING:
        if req.get(a) is not None:
            gen[g] = req[a]
    _stop_sequences(req.get("stop_sequences"), gen, notes)
    cfg, on = thinking_config(
        req.get("thinking"), req.get("output_config"), model, gen.get("maxOutputTokens", cap)
    )
    if cfg is not None:
        gen["thinkingConfig"] = cfg
    request_notes.thinking(notes, req.get("thinking"), req.get("output_config"), cfg, target.model)
    return gen, on


def _max_tokens(
    req: Mapping[str, Any], target: Target, model: ModelFacts, gen: dict[str, Any], notes: Notes
) -> int:
    """maxOutputTokens: the client's max_tokens within the target's cap and the model's ceiling (lower for a
    non-streaming call on some models). → the cap."""
    max_tokens = req.get("max_tokens")
    ceiling = model.output_cap(bool(req.get("stream")))
    cap = min(target.max_tokens or ceiling, ceiling)
    if not isinstance(max_tokens, int):
        return cap
    gen["maxOutputTokens"] = max(1, min(max_tokens, cap))
    if max_tokens > cap:
        why = (
            "the target's max_tokens"
            if target.max_tokens and target.max_tokens < ceiling
            else f"{target.model}'s ceiling"
            + (" for a non-streaming call" if ceiling < model.max_output else "")
        )
        notes.add(
            "cap-applied",
            f"max_tokens {max_tokens} → {cap} ({why})",
            field="max_tokens",
            asked=max_tokens,
            sent=cap,
        )
    return cap


def _stop_sequences(stops: Any, gen: dict[str, Any], notes: Notes) -> None:
    """Gemini takes at most five, each a non-empty string."""
    if not isinstance(stops, list) or not stops:
        return
    gen["stopSequences"] = [s for s in stops if isinstance(s, str) and s][:MAX_STOP_SEQUENCES]
    if len(stops) > MAX_STOP_SEQUENCES:
        notes.add(
            "cap-applied",
            f"stop_sequences {len(stops)} → {MAX_STOP_SEQUENCES} (Gemini takes at most {MAX_STOP_SEQUENCES})",
            field="stop_sequences",
            asked=len(stops),
            sent=MAX_STOP_SEQUENCES,
        )
