"""The pricing rule on its own: table, tiers, overrides, cache reads and writes, and what costs nothing."""

import pytest

from proxy import pricing
from proxy.config import TargetConfig
from proxy.record import Record, Usage


def rec(model: str = "gemini-2.5-pro", kind: str = "messages", **usage: int) -> Record:
    return Record(id="r", started_at=0.0, kind=kind, request_model=model, usage=Usage(**usage))


def target(**costs: float) -> TargetConfig:
    return TargetConfig(name="t", provider="gemini", model="gemini-2.5-pro", api_key="k", **costs)


def test_a_known_model_is_priced_per_million_tokens():
    cost = pricing.price(rec(input_tokens=100_000, output_tokens=100_000))
    assert cost == pytest.approx((100_000 * 1.25 + 100_000 * 10.0) / 1e6)


def test_above_200k_prompt_tokens_the_whole_prompt_moves_to_the_long_tier():
    below = pricing.price(rec(input_tokens=200_000, output_tokens=1000))
    above = pricing.price(rec(input_tokens=200_001, output_tokens=1000))
    assert below == pytest.approx((200_000 * 1.25 + 1000 * 10.0) / 1e6)
    assert above == pytest.approx((200_001 * 2.50 + 1000 * 15.0) / 1e6)


def test_cached_reads_count_toward_the_tier_and_are_priced_at_the_cached_rate():
    cost = pricing.price(rec(input_tokens=1000, cache_read_tokens=1_000_000))
    assert cost == pytest.approx(
        (1000 * 2.50 + 1_000_000 * 0.625) / 1e6
    )  # 1,001,000 prompt tokens: long tier


def test_a_cache_write_costs_a_quarter_more_than_input():
    cost = pricing.price(rec("claude-sonnet-4-5", input_tokens=10, cache_creation_tokens=1_000_000))
    assert cost == pytest.approx((10 * 3.0 + 1_000_000 * 3.0 * 1.25) / 1e6)


def test_an_unknown_model_costs_none_never_zero():
    assert pricing.price(rec("some-model-nobody-priced", input_tokens=5, output_tokens=5)) is None


def test_the_target_s_prices_override_the_table_and_its_cache_writes():
    t = target(input_cost=1.0, output_cost=2.0, cached_cost=0.5)
    cost = pricing.price(
        rec("some-model-nobody-priced", input_tokens=10**6, output_tokens=10**6, cache_read_tokens=10**6), t
    )
    assert cost == pytest.approx(1.0 + 2.0 + 0.5)
    assert pricing.price(rec(cache_creation_tokens=10**6), t) == pytest.approx(1.25)


def test_a_target_with_only_one_price_does_not_override():
    assert pricing.override(target(input_cost=1.0)) is None
    assert pricing.override(target(input_cost=1.0, output_cost=3.0)) == pricing.Price(1.0, 3.0, 1.0)


def test_counting_tokens_is_free_and_zero_tokens_cost_zero():
    assert pricing.price(rec(kind="count_tokens", input_tokens=50_000)) == 0.0
    assert pricing.price(rec("some-model-nobody-priced")) == 0.0


def test_a_versioned_model_name_finds_its_longest_prefix():
    assert pricing.lookup("models/gemini-2.5-flash-lite-001") == pricing.TABLE["gemini-2.5-flash-lite"]
    assert pricing.lookup(None) is None
