"""The model-facts table (issue 21): windows, output caps (gemini-4's lower one for a non-streaming call),
thinking levels per model, where Vertex serves it; and what it feeds: translation, the catalogue, pricing,
the Vertex default location, and the served model on the record."""

from __future__ import annotations

import pytest

from proxy import config as cfg
from proxy.providers import make
from proxy.record.pricing import model_price
from proxy.simulator import Reply
from proxy.translate import request as treq
from proxy.translate.catalog import limits
from proxy.translate.models import facts
from tests.conftest import API_KEY, run_gateway


@pytest.mark.parametrize(
    "model, window, out, oneshot, levels, where",
    [
        ("gemini-4-argon", 1_048_576, 65536, 32768, ("LOW", "MEDIUM", "HIGH"), "global"),
        ("gemini-4-carbon", 1_048_576, 65536, 32768, ("LOW", "MEDIUM", "HIGH"), "global"),
        ("gemini-4-hydrogen", 1_048_576, 65536, 65536, ("LOW", "MEDIUM", "HIGH", "XHIGH"), "global"),
        (
            "gemini-4-neon-preview-11-2026",
            1_048_576,
            65536,
            65536,
            ("LOW", "MEDIUM", "HIGH", "XHIGH"),
            "global",
        ),
        ("gemini-3.8-flash", 1_048_576, 65536, 65536, ("LOW", "MEDIUM", "HIGH"), "global"),
        ("gemini-flash-latest", 1_048_576, 65536, 65536, ("LOW", "MEDIUM", "HIGH"), "global"),
        ("gemini-3.5-flash-lite", 1_048_576, 65536, 65536, ("MINIMAL", "LOW", "MEDIUM", "HIGH"), "global"),
        ("gemini-3.1-pro-preview", 1_048_576, 65536, 65536, ("LOW", "MEDIUM", "HIGH"), "global"),
        ("gemini-3-pro-preview", 1_048_576, 65536, 65536, ("LOW", "HIGH"), "global"),
        ("gemini-2.5-flash", 1_048_576, 65536, 65536, (), "us-central1"),
        ("gemini-2.0-flash", 1_048_576, 8192, 8192, (), "us-central1"),
        ("gemini-1.5-pro", 2_097_152, 8192, 8192, (), "us-central1"),
    ],
)
def test_the_table_says_what_googles_model_pages_say(model, window, out, oneshot, levels, where):
    f = facts(model)
    assert (f.window, f.output_cap(True), f.output_cap(False), f.levels, f.locations[0]) == (
        window,
        out,
        oneshot,
        levels,
        where,
    )
    assert limits(model).context_window == window and limits(model).max_output == out


def test_gemini_4_multi_regions_are_listed_beside_the_global_endpoint():
    assert facts("gemini-4-carbon").locations == ("global", "us", "eu")
    assert facts("gemini-3.8-flash").locations == ("global", "us", "eu")
    assert facts("gemini-3.1-pro-preview").locations == ("global",)


@pytest.mark.parametrize("stream, sent", [(True, 65536), (False, 32768)])
def test_a_non_streaming_call_to_gemini_4_carbon_is_capped_lower(stream, sent):
    req = {
        "model": "m",
        "max_tokens": 128000,
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
    }
    t = treq.translate(req, treq.Target("gemini-4-carbon"))
    assert t.body["generationConfig"]["maxOutputTokens"] == sent
    cap = [n for n in t.notes if n.kind == "cap-applied"][0]
    assert cap.data["sent"] == sent and ("non-streaming" in cap.detail) == (not stream)


@pytest.mark.parametrize(
    "model, effort, level",
    [
        ("gemini-4-hydrogen", "max", "XHIGH"),
        ("gemini-4-carbon", "max", "HIGH"),  # no XHIGH there: its highest
        ("gemini-3.8-flash", "low", "LOW"),
        ("gemini-3-pro-preview", "medium", "HIGH"),
    ],
)
def test_thinking_maps_to_a_level_the_model_takes(model, effort, level):
    req = {
        "model": "m",
        "max_tokens": 8000,
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": effort},
        "messages": [{"role": "user", "content": "hi"}],
    }
    cfg_ = treq.translate(req, treq.Target(model)).body["generationConfig"]["thinkingConfig"]
    assert cfg_["thinkingLevel"] == level and "thinkingBudget" not in cfg_


def test_thinking_off_on_a_model_without_minimal_is_its_least_level():
    req = {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    assert treq.translate(req, treq.Target("gemini-3.8-flash")).body["generationConfig"][
        "thinkingConfig"
    ] == {"thinkingLevel": "LOW"}


@pytest.mark.parametrize(
    "model", ["gemini-4-carbon", "gemini-4-hydrogen", "gemini-4-neon", "gemini-3.8-flash"]
)
def test_current_models_are_priced(model):
    p = model_price(model)
    assert p is not None and p.input_mtok and p.output_mtok


def test_a_current_model_defaults_to_the_global_endpoint(sa_json):
    t = cfg.from_mapping(
        {
            "targets": [
                {
                    "name": "v",
                    "provider": "vertex",
                    "model": "gemini-3.8-flash",
                    "project_id": "p",
                    "service_account_json": sa_json,
                }
            ]
        },
        "test",
    ).targets[0]
    assert (
        make(t)
        .url("generateContent")
        .startswith(
            "https://aiplatform.googleapis.com/v1/projects/p/locations/global/publishers/google/models/gemini-3.8-flash"
        )
    )


@pytest.mark.parametrize("stream", [True, False])
async def test_the_served_model_version_is_on_the_record(fake, stream):
    raw = {
        "targets": [
            {
                "name": "s",
                "provider": "gemini",
                "model": "gemini-flash-latest",
                "api_key": API_KEY,
                "api_endpoint": fake.url,
            }
        ]
    }
    fake.script(Reply.text("hi", model_version="gemini-3.8-flash-002"))
    async for gw in run_gateway(raw, fake):
        kw = {"model": "claude-opus-5-5", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
        if stream:
            async with gw.client.messages.stream(**kw) as s:
                await s.get_final_message()
        else:
            await gw.client.messages.create(**kw)
        rec = gw.records[-1]
    assert (
        rec.response_model == "gemini-3.8-flash-002" and rec.tried_targets[-1].model == "gemini-flash-latest"
    )
