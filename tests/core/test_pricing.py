from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tokentop.core.events import Event
from tokentop.core.pricing import Pricer, PriceOverride, normalise_model, to_pusd, usd

TS = datetime(2026, 11, 1, tzinfo=UTC).timestamp()


@pytest.fixture(scope="module")
def pricer() -> Pricer:
    return Pricer()


def ev(model: str | None, **tokens: int) -> Event:
    return Event(id="x", ts=TS, model=model, **tokens)


def test_claude_sonnet_4_one_million_each_is_18_dollars(pricer: Pricer) -> None:
    cost = pricer.price(ev("claude-sonnet-4", input_tokens=1_000_000, output_tokens=1_000_000))
    assert cost.kind == "estimated"
    assert cost.usd == Decimal("18.00")


def test_gpt5_with_cached_input(pricer: Pricer) -> None:
    cost = pricer.price(ev("gpt-5", input_tokens=10_000, cache_read_tokens=8_000, output_tokens=2_000))
    assert cost.usd == Decimal("0.0235")


def test_claude_cache_write_5m_and_1h(pricer: Pricer) -> None:
    # formats.md §7.2: 30,000 in (20,000 written, 5,000 of them for 1 h) → $0.11625
    cost = pricer.price(ev("claude-sonnet-4-5", input_tokens=30_000, cache_write_tokens=20_000, cache_write_1h_tokens=5_000))
    assert cost.usd == Decimal("0.11625")


def test_tier_cliff_goes_to_the_library(pricer: Pricer) -> None:
    below = pricer.price(ev("claude-sonnet-4-5", input_tokens=199_000, output_tokens=1_000))
    above = pricer.price(ev("claude-sonnet-4-5", input_tokens=250_000, output_tokens=1_000))
    assert below.usd == Decimal("0.612")
    assert above.usd == Decimal("1.5225")  # all tokens at the >200k rate


def test_safe_normalisation_only(pricer: Pricer) -> None:
    assert normalise_model("anthropic/claude-sonnet-4-5-20250929[1m]") == "claude-sonnet-4-5-20250929"
    assert normalise_model(" GPT-5 ") == "gpt-5"
    a = pricer.price(ev("anthropic/claude-sonnet-4-5-20250929[1m]", input_tokens=10_000, output_tokens=2_000))
    assert a.usd == Decimal("0.06")
    assert a.priced_as == "claude-sonnet-4-5"


@pytest.mark.parametrize("model", ["totally-new-model-9", "<synthetic>", "gpt5-typo-ish", None])
def test_unknown_models_are_unpriced_not_zero(pricer: Pricer, model: str | None) -> None:
    cost = pricer.price(ev(model, input_tokens=10, output_tokens=10))
    assert cost.kind == "unpriced"
    assert cost.pusd is None and cost.usd is None


def test_provided_cost_is_used_as_is(pricer: Pricer) -> None:
    e = Event(id="x", ts=TS, model="gpt-5", input_tokens=10, cost_usd=0.1234567)
    cost = pricer.price(e)
    assert cost.kind == "provided"
    assert cost.usd == Decimal("0.1234567")


def test_overrides_win_over_the_library() -> None:
    p = Pricer({"gpt-5": PriceOverride(input=Decimal("2"), output=Decimal("20"), cache_read=Decimal("0.5")),
                "my-finetune": PriceOverride(input=Decimal("1"), output=Decimal("1"))})
    assert p.price(ev("gpt-5", input_tokens=1_000_000, output_tokens=1_000_000)).usd == Decimal("22")
    assert p.price(ev("gpt-5", input_tokens=1_000_000, cache_read_tokens=1_000_000)).usd == Decimal("0.5")
    own = p.price(ev("my-finetune", input_tokens=500_000, output_tokens=500_000))
    assert own.kind == "estimated" and own.usd == Decimal("1")


def test_rate_cards_are_cached_per_model(pricer: Pricer) -> None:
    pricer.price(ev("gpt-5-mini", input_tokens=1))
    cards = len(pricer._cards)
    for i in range(50):
        pricer.price(ev("gpt-5-mini", input_tokens=i, output_tokens=i))
    assert len(pricer._cards) == cards


def test_fast_path_matches_the_library_exactly(pricer: Pricer) -> None:
    import genai_prices

    for model in ("gpt-5", "gpt-5-mini", "claude-opus-4-1", "claude-haiku-4-5", "claude-sonnet-4"):
        for inp, cr, cw, out in ((12_345, 3_000, 1_000, 777), (50_000, 49_000, 0, 1), (1, 0, 0, 0)):
            e = ev(model, input_tokens=inp, cache_read_tokens=cr, cache_write_tokens=cw, output_tokens=out)
            expected = genai_prices.calc_price(
                genai_prices.Usage(input_tokens=inp, cache_read_tokens=cr, cache_write_tokens=cw, output_tokens=out),
                model, genai_request_timestamp=datetime.fromtimestamp(TS, UTC),
            ).total_price
            assert pricer.price(e).pusd == to_pusd(expected), (model, inp, cr, cw, out)


def test_money_conversions_are_exact() -> None:
    assert usd(to_pusd("0.000000000001")) == Decimal("1E-12")
    assert to_pusd(Decimal("18.00")) == 18 * 10**12
