"""Providers: their defaults (regions), their dialect, and the config validating presence only."""

import json

import pytest

from proxy import providers, registry
from proxy.config import TargetConfig
from proxy.exchange.attempts import relay_for
from proxy.exchange.relay import anthropic as anthropic_relay
from proxy.exchange.relay import gemini as gemini_relay
from tests.conftest import service_account_info


@pytest.fixture
def sa_json(rsa_key) -> str:
    return json.dumps(service_account_info(rsa_key, "http://127.0.0.1:9/token"))


def vertex_target(provider: str, sa_json: str, **kw: str) -> TargetConfig:
    return TargetConfig(
        name="t", provider=provider, model="m", project_id="p", service_account_json=sa_json, **kw
    )


def test_claude_on_vertex_defaults_to_us_east5(sa_json):
    p = providers.make(vertex_target("vertex-anthropic", sa_json))
    assert "https://us-east5-aiplatform.googleapis.com/v1/projects/p/locations/us-east5/" in p.url(
        "generateContent"
    )


def test_gemini_on_vertex_defaults_to_us_central1(sa_json):
    p = providers.make(vertex_target("vertex", sa_json))
    assert p.url("generateContent").startswith(
        "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/"
    )


def test_the_config_leaves_the_region_to_the_provider(sa_json):
    assert vertex_target("vertex-anthropic", sa_json).location_id is None
    p = providers.make(vertex_target("vertex-anthropic", sa_json, location_id="europe-west1"))
    assert "/locations/europe-west1/" in p.url("generateContent")


def test_the_config_still_demands_what_a_provider_needs():
    with pytest.raises(ValueError, match="project_id"):
        TargetConfig(name="t", provider="vertex-anthropic", model="m", service_account_json="{}")
    with pytest.raises(ValueError, match="api_key"):
        TargetConfig(name="t", provider="gemini", model="m")


def test_each_provider_kind_has_a_class_and_each_dialect_a_relay(sa_json):
    assert set(registry.KINDS) == {"vertex", "gemini", "anthropic", "vertex-anthropic"}
    for kind in registry.KINDS:
        assert issubclass(providers.provider_class(kind), providers.Provider)
    dialects = {kind: k.dialect for kind, k in registry.KINDS.items()}
    assert dialects == {
        "vertex": "gemini",
        "gemini": "gemini",
        "anthropic": "anthropic",
        "vertex-anthropic": "anthropic",
    }
    p = providers.make(vertex_target("vertex-anthropic", sa_json))
    assert p.kind == "vertex-anthropic" and relay_for(p) is anthropic_relay.relay
    assert relay_for(providers.make(vertex_target("vertex", sa_json))) is gemini_relay.relay
    assert isinstance(
        providers.make(vertex_target("vertex-anthropic", sa_json)), providers.PassthroughProvider
    )
