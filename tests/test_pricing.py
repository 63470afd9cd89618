"""The pricing rule on its own: prices from the library, tiers, cache reads and writes, overrides, the
per-target multiplier, and what costs nothing or is unpriced."""

import time

import pytest

from proxy.config import TargetConfig
from proxy.record import Record, Usage, pricing

NOW = time.time()


def rec(model: str = "gemini-2.5-pro", kind: str = "messages", **usage: int) -> Record:
    return Record(id="r", started_at=NOW, kind=kind, request_model=model, usage=Usage(**usage))


def target(**costs: float) -> TargetConfig:
    return TargetConfig(name="t", provider="gemini", model="gemini-2.5-pro", api_key="k", **costs)


# Prices known independently of the library (Google's and Anthropic's price pages), per 1M tokens.
KNOWN = [
    # model, input, output, cache read (at <= 200k prompt tokens)
    ("gemini-2.5-pro", 1.25, 10.0, 0.125),
    ("gemini-2.5-flash", 0.30, 2.50, 0.03),
    ("gemini-2.5-flash-lite", 0.10, 0.40, 0.01),
    ("gemini-2.0-flash", 0.10, 0.40, 0.025),
    ("gemini-3-pro-preview", 2.00, 12.0, 0.20),
    ("claude-sonnet-4-5", 3.0, 15.0, 0.30),
]


@pytest.mark.parametrize(("model", "pin", "pout", "pread"), KNOWN)
def test_known_prices_come_from_the_library(model, pin, pout, pread):
    p = pricing.model_price(model)
    assert p is not None
    assert pricing.rate(p.input_mtok) == pytest.approx(pin)
    assert pricing.rate(p.output_mtok) == pytest.approx(pout)
    assert pricing.rate(p.cache_read_mtok) == pytest.approx(pread)
    cost = pricing.price(rec(model, input_tokens=100_000, output_tokens=10_000, cache_read_tokens=50_000))
    assert cost == pytest.approx((100_000 * pin + 10_000 * pout + 50_000 * pread) / 1e6)


def test_gemini_2_5_pro_cached_input_is_0_125_not_the_old_tables_0_31():
    cost = pricing.price(rec(cache_read_tokens=1_000_000 // 10))
    assert cost == pytest.approx(100_000 * 0.125 / 1e6)


def test_claude_code_s_default_models_and_gemini_3_are_priced():
    for model in ("claude-opus-5-5", "claude-haiku-5-5", "gemini-3-pro-preview", "gemini-3.1-pro-preview"):
        assert pricing.price(rec(model, input_tokens=1000, output_tokens=1000)), model


def test_above_200k_prompt_tokens_the_whole_prompt_moves_to_the_long_tier():
    below = pricing.price(rec(input_tokens=200_000, output_tokens=1000))
    above = pricing.price(rec(input_tokens=200_001, output_tokens=1000))
    assert below == pytest.approx((200_000 * 1.25 + 1000 * 10.0) / 1e6)
    assert above == pytest.approx((200_001 * 2.50 + 1000 * 15.0) / 1e6)


def test_cached_reads_count_toward_the_tier_and_are_priced_at_the_cached_rate():
    cost = pricing.price(rec(input_tokens=1000, cache_read_tokens=1_000_000))
    assert cost == pytest.approx((1000 * 2.50 + 1_000_000 * 0.25) / 1e6)  # 1,001,000 prompt tokens: long tier


def test_a_cache_write_is_priced_at_the_library_s_cache_write_rate():
    p = pricing.model_price("claude-sonnet-4-5")
    assert p is not None and pricing.rate(p.cache_write_mtok) == pytest.approx(3.75)
    cost = pricing.price(rec("claude-sonnet-4-5", input_tokens=10, cache_creation_tokens=100_000))
    assert cost == pytest.approx((10 * 3.0 + 100_000 * 3.75) / 1e6)


def test_an_unknown_model_costs_none_never_zero():
    assert pricing.price(rec("some-model-nobody-priced", input_tokens=5, output_tokens=5)) is None


def test_the_target_s_prices_override_the_library_and_its_cache_writes():
    t = target(input_cost=1.0, output_cost=2.0, cached_cost=0.5)
    cost = pricing.price(
        rec("some-model-nobody-priced", input_tokens=10**6, output_tokens=10**6, cache_read_tokens=10**6), t
    )
    assert cost == pytest.approx(1.0 + 2.0 + 0.5)
    assert pricing.price(rec(cache_creation_tokens=10**6), t) == pytest.approx(1.25)
    t2 = target(input_cost=1.0, output_cost=2.0, cache_write_cost=3.0)
    assert pricing.price(rec(cache_creation_tokens=10**6), t2) == pytest.approx(3.0)


def test_a_target_with_only_one_price_does_not_override():
    assert pricing.override(target(input_cost=1.0)) is None
    assert pricing.override(target(input_cost=1.0, output_cost=3.0)) == pricing.Price(1.0, 3.0, 1.0)


def test_a_regional_multiplier_scales_the_library_price():
    base = pricing.price(rec(input_tokens=100_000, output_tokens=1000))
    regional = pricing.price(rec(input_tokens=100_000, output_tokens=1000), target(price_multiplier=1.1))
    assert base is not None and regional == pytest.approx(base * 1.1)


def test_counting_tokens_is_free_and_zero_tokens_cost_zero():
    assert pricing.price(rec(kind="count_tokens", input_tokens=50_000)) == 0.0
    assert pricing.price(rec("some-model-nobody-priced")) == 0.0


def test_versioned_and_pathed_model_names_are_found():
    for name in ("models/gemini-2.5-flash-lite", "gemini-2.5-flash-001", "claude-sonnet-4-5@20250929"):
        assert pricing.find(name) is not None, name
    assert pricing.find(None) is None


def test_a_record_is_priced_by_plain_arithmetic_the_library_asked_once_per_model(monkeypatch):
    """On the request path the library is asked at most once per model (a counter of its own price
    computation, not a timer); every later record of that model is priced from the rates it gave."""
    from genai_prices.types import ModelInfo

    pricing.forget()
    asked: dict[str, int] = {}
    calc = ModelInfo.calc_price

    def counted(self, *a, **kw):
        asked[self.id] = asked.get(self.id, 0) + 1
        return calc(self, *a, **kw)

    monkeypatch.setattr(ModelInfo, "calc_price", counted)
    for n in range(50):
        for model in ("gemini-2.5-pro", "gemini-2.5-flash"):
            pricing.price(rec(model, input_tokens=1000 + n, output_tokens=n, cache_read_tokens=n))
    assert set(asked) == {"gemini-2.5-pro", "gemini-2.5-flash"}
    resolved = dict(asked)
    assert pricing.resolutions >= 2
    before = pricing.resolutions
    for n in range(50):
        pricing.price(rec("gemini-2.5-pro", input_tokens=250_000 + n, output_tokens=n))  # the long tier too
    assert asked == resolved and pricing.resolutions == before  # not asked again


@pytest.mark.parametrize(
    "model", ["gemini-2.5-pro", "gemini-2.5-flash", "claude-sonnet-4-5", "gemini-2.0-flash"]
)
def test_the_arithmetic_gives_what_the_library_computes(model):
    for prompt in (0, 1, 1000, 128_000, 128_001, 199_999, 200_000, 200_001, 350_000):
        for out, read, write in ((0, 0, 0), (1234, 0, 0), (50, prompt // 3, 0), (7, 0, prompt // 4)):
            want = pricing.library_cost(model, prompt, out, read, write, NOW)
            got = pricing.rated_cost(model, prompt, out, read, write, NOW)
            assert want is not None and got == pytest.approx(want, rel=1e-12, abs=1e-15), (prompt, out, read)
    assert pricing.rated_cost("no-such-model-anywhere", 10, 10, 0, 0, NOW) is None
