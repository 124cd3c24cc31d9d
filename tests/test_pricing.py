"""pricing.py: the seed's reference price, Bedrock id forms, overrides, unknown models, speed."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import genai_prices.data_snapshot
import pytest
from genai_prices import Usage, calc_price

from llm_audit_langchain.enrich import pricing
from llm_audit_langchain.enrich.pricing import (
    calculate_cost,
    normalize_model_id,
    set_price_overrides,
)
from llm_audit_langchain.errors import ConfigError

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
REFERENCE = 0.000875  # seed 001 §5.1: 1000 in at $0.25/1M + 500 out at $1.25/1M


@pytest.fixture(autouse=True)
def fresh_book(monkeypatch: pytest.MonkeyPatch) -> Iterator[pricing._PriceBook]:
    """A new price book per test: no overrides, no memo, no warnings given yet."""
    monkeypatch.delenv(pricing.OVERRIDES_ENV, raising=False)
    book = pricing._PriceBook()
    monkeypatch.setattr(pricing, "_book", book)
    yield book


def warnings_in(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "llm_audit_langchain" and record.levelno == logging.WARNING
    ]


# --- the reference and Bedrock id forms -------------------------------------------------------


@pytest.mark.parametrize(
    "model_id",
    [
        HAIKU,
        f"us.{HAIKU}",
        f"eu.{HAIKU}",
        f"apac.{HAIKU}",
        f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}",
        f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.{HAIKU}",
        f"{HAIKU}:200k",
    ],
)
def test_seed_reference_price_for_every_bedrock_form(model_id: str) -> None:
    cost = calculate_cost(model_id, 1000, 500)

    assert isinstance(cost, float)
    assert cost == pytest.approx(REFERENCE, abs=1e-12)
    assert cost == REFERENCE  # exact: computed in Decimal, converted once


def test_provider_names_from_langchain_and_genai_prices() -> None:
    for provider in ("amazon_bedrock", "aws", "bedrock_converse"):
        assert calculate_cost(f"us.{HAIKU}", 1000, 500, provider=provider) == pytest.approx(
            REFERENCE, abs=1e-12
        )
    assert calculate_cost("gpt-4o", 1000, 500, provider="openai") == pytest.approx(0.0075)
    assert calculate_cost("openai/gpt-4o", 1000, 500) == pytest.approx(0.0075)


def test_a_named_provider_is_the_only_one_tried(caplog: pytest.LogCaptureFixture) -> None:
    # A local model must not be billed at a hosted model's price because the names match.
    assert calculate_cost("gpt-4o", 1000, 500, provider="ollama") is None
    assert len(warnings_in(caplog)) == 1


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        (f"us.{HAIKU}", HAIKU),
        (f"US-GOV.{HAIKU}", HAIKU),
        (f"global.{HAIKU}", HAIKU),
        (f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}", HAIKU),
        (f"arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.{HAIKU}", HAIKU),
        (f"{HAIKU}:200k", HAIKU),
        ("openai/gpt-4o", "gpt-4o"),
        (" GPT-4o ", "gpt-4o"),
        ("us.amazon.nova-pro-v1:0", "amazon.nova-pro-v1:0"),
        ("claude-3-haiku-20240307", "claude-3-haiku-20240307"),
        ("us", "us"),
    ],
)
def test_normalize_model_id(raw: str, normalized: str) -> None:
    assert normalize_model_id(raw) == normalized


# --- cache tokens -----------------------------------------------------------------------------


def test_cache_tokens_at_their_own_rates() -> None:
    cost = calculate_cost(
        "us.anthropic.claude-3-5-haiku-20241022-v1:0",
        1000,
        500,
        cache_read_tokens=200,
        cache_write_tokens=100,
    )

    expected = (700 * 0.80 + 200 * 0.08 + 100 * 1.00 + 500 * 4.00) / 1e6
    assert cost == pytest.approx(expected, abs=1e-12)


def test_cache_tokens_without_a_rate_are_priced_as_input() -> None:
    # genai-prices has no cache prices for claude-3-haiku on Bedrock.
    with_cache = calculate_cost(HAIKU, 1000, 500, cache_read_tokens=400, cache_write_tokens=100)

    assert with_cache == pytest.approx(REFERENCE, abs=1e-12)


def test_inconsistent_cache_counts_give_none(caplog: pytest.LogCaptureFixture) -> None:
    assert calculate_cost(HAIKU, 100, 5, cache_read_tokens=500) is None
    assert calculate_cost(HAIKU, 100, 5, cache_read_tokens=500) is None
    assert len(warnings_in(caplog)) == 1


@pytest.mark.parametrize(
    "model_id",
    ["gpt-4o", "claude-3-5-sonnet-20241022", "us.anthropic.claude-3-5-haiku-20241022-v1:0"],
)
@pytest.mark.parametrize(
    "tokens", [(1000, 500, 0, 0), (12_345, 678, 10_000, 0), (5000, 1, 1000, 3000)]
)
def test_memoized_rates_agree_with_genai_prices(
    model_id: str, tokens: tuple[int, int, int, int]
) -> None:
    input_tokens, output_tokens, cache_read, cache_write = tokens
    provider = "aws" if model_id.startswith("us.") else None
    expected = calc_price(
        Usage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
        ),
        model_id,
        provider_id=provider,
    ).total_price

    cost = calculate_cost(
        model_id,
        input_tokens,
        output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )

    assert isinstance(pricing._book.pricer(model_id, None), pricing._Rates)
    assert cost == pytest.approx(float(expected), rel=1e-12)


def test_tiered_prices_are_left_to_genai_prices() -> None:
    # gemini-2.5-pro doubles its price above 200k input tokens: no flat rate can say that.
    small = calc_price(Usage(input_tokens=1000, output_tokens=500), "gemini-2.5-pro").total_price
    large = calc_price(Usage(input_tokens=300_000, output_tokens=500), "gemini-2.5-pro")

    assert calculate_cost("gemini-2.5-pro", 1000, 500) == pytest.approx(float(small))
    assert calculate_cost("gemini-2.5-pro", 300_000, 500) == pytest.approx(float(large.total_price))
    assert isinstance(pricing._book.pricer("gemini-2.5-pro", None), pricing._GenaiPricer)


# --- unknown models and missing tokens --------------------------------------------------------


def test_unknown_model_is_none_with_one_warning_per_model(
    caplog: pytest.LogCaptureFixture,
) -> None:
    for _ in range(3):
        assert calculate_cost("my-private-model", 10, 10) is None
    assert calculate_cost("another-private-model", 10, 10) is None

    messages = warnings_in(caplog)
    assert len(messages) == 2
    assert "my-private-model" in messages[0] and "another-private-model" in messages[1]


def test_warnings_remembered_are_bounded(monkeypatch: pytest.MonkeyPatch,
                                        fresh_book: pricing._PriceBook,
                                        caplog: pytest.LogCaptureFixture) -> None:
    """Model ids come from callers (fine-tunes, deployments): one remembered warning each
    must not grow for ever. Past the bound one last warning says so, then nothing more."""
    monkeypatch.setattr(pricing, "_WARNED_LIMIT", 20)
    for i in range(200):
        assert calculate_cost(f"private-model-{i}", 10, 10) is None
        assert len(fresh_book._warned) <= 21
    messages = warnings_in(caplog)
    assert len(messages) == 21
    assert all(f"private-model-{i}" in messages[i] for i in range(20))
    assert "further ones are not logged" in messages[20]
    assert calculate_cost(HAIKU, 1000, 500) == pytest.approx(REFERENCE)  # pricing goes on


def test_none_tokens_or_model_give_none(caplog: pytest.LogCaptureFixture) -> None:
    assert calculate_cost(HAIKU, None, 500) is None
    assert calculate_cost(HAIKU, 1000, None) is None
    assert warnings_in(caplog) == []
    assert calculate_cost(None, 1000, 500) is None
    assert calculate_cost(None, 1000, 500) is None
    assert len(warnings_in(caplog)) == 1


def test_zero_tokens_cost_zero() -> None:
    assert calculate_cost(HAIKU, 0, 0) == 0.0


# --- overrides --------------------------------------------------------------------------------


def test_overrides_win_and_match_normalized_ids() -> None:
    set_price_overrides(
        {HAIKU: {"input": 1.0, "output": 2.0}, "My-Model": {"input": 3, "output": 4}}
    )

    assert calculate_cost(f"us.{HAIKU}", 1_000_000, 1_000_000) == pytest.approx(3.0)
    assert calculate_cost("my-model", 1_000_000, 0) == pytest.approx(3.0)

    set_price_overrides(None)

    assert calculate_cost(f"us.{HAIKU}", 1000, 500) == pytest.approx(REFERENCE, abs=1e-12)
    assert calculate_cost("my-model", 1_000_000, 0) is None


def test_override_cache_rates_and_their_defaults() -> None:
    set_price_overrides(
        {
            "with-cache": {"input": 1.0, "output": 2.0, "cache_read": 0.1, "cache_write": 1.25},
            "without-cache": {"input": 1.0, "output": 2.0},
        }
    )
    tokens: dict[str, Any] = {"cache_read_tokens": 500_000, "cache_write_tokens": 200_000}

    assert calculate_cost("with-cache", 1_000_000, 0, **tokens) == pytest.approx(
        0.3 * 1.0 + 0.5 * 0.1 + 0.2 * 1.25
    )
    assert calculate_cost("without-cache", 1_000_000, 0, **tokens) == pytest.approx(1.0)


def test_overrides_from_json_and_toml_files(tmp_path: Path) -> None:
    json_file = tmp_path / "prices.json"
    json_file.write_text(json.dumps({"json-model": {"input": 1.5, "output": 0}}))
    toml_file = tmp_path / "prices.toml"
    toml_file.write_text('["toml.model-v1:0"]\ninput = 2.5\noutput = 0\n')

    set_price_overrides(json_file)
    assert calculate_cost("json-model", 1_000_000, 0) == pytest.approx(1.5)
    set_price_overrides(str(toml_file))
    assert calculate_cost("toml.model-v1:0", 1_000_000, 0) == pytest.approx(2.5)
    assert calculate_cost("json-model", 1_000_000, 0) is None


def test_overrides_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"env-model": {"input": 1.0, "output": 1.0}}))
    monkeypatch.setenv(pricing.OVERRIDES_ENV, str(path))

    assert calculate_cost("env-model", 500_000, 500_000) == pytest.approx(1.0)


def test_a_broken_environment_file_is_logged_not_raised(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(pricing.OVERRIDES_ENV, str(tmp_path / "missing.json"))

    assert calculate_cost(HAIKU, 1000, 500) == pytest.approx(REFERENCE, abs=1e-12)
    assert any(pricing.OVERRIDES_ENV in message for message in warnings_in(caplog))


@pytest.mark.parametrize(
    "overrides",
    [
        {"m": {"input": 1.0}},
        {"m": {"input": 1.0, "output": -2.0}},
        {"m": {"input": 1.0, "output": "2"}},
        {"m": {"input": 1.0, "output": float("nan")}},
        {"m": {"input": 1.0, "output": 2.0, "cached": 0.5}},
        {"m": [1.0, 2.0]},
    ],
)
def test_invalid_overrides_raise_config_error(overrides: Any) -> None:
    with pytest.raises(ConfigError):
        set_price_overrides(overrides)


def test_unreadable_override_file_raises(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")

    with pytest.raises(ConfigError):
        set_price_overrides(bad)
    with pytest.raises(ConfigError):
        set_price_overrides(tmp_path / "absent.toml")


# --- offline, thread-safe, cheap --------------------------------------------------------------


def test_no_network_and_no_price_updater(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    threads_before = set(threading.enumerate())

    assert calculate_cost("us.amazon.nova-pro-v1:0", 1000, 500) is not None
    assert calculate_cost("gemini-2.5-pro", 1000, 500) is not None
    assert calculate_cost("unknown-model-x", 1000, 500) is None

    assert attempts == []
    assert genai_prices.data_snapshot._custom_snapshot is None  # UpdatePrices never ran
    assert set(threading.enumerate()) <= threads_before


def test_concurrent_calls_agree(caplog: pytest.LogCaptureFixture) -> None:
    results: list[float | None] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def work() -> None:
        start.wait()
        local = [calculate_cost(f"us.{HAIKU}", 1000, 500) for _ in range(200)]
        local += [calculate_cost("nobody-knows-me", 1, 1) for _ in range(50)]
        with lock:
            results.extend(local)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    priced = [r for r in results if r is not None]
    assert len(priced) == 8 * 200
    assert len(set(priced)) == 1 and priced[0] == pytest.approx(REFERENCE, abs=1e-12)
    assert len([m for m in warnings_in(caplog) if "nobody-knows-me" in m]) == 1


def test_a_warm_call_costs_microseconds() -> None:
    calculate_cost(f"us.{HAIKU}", 1000, 500)
    calls = 5000

    started = time.perf_counter()
    for _ in range(calls):
        calculate_cost(f"us.{HAIKU}", 1000, 500, cache_read_tokens=10)
    per_call = (time.perf_counter() - started) / calls

    assert per_call < 50e-6  # ~2 µs measured on the 2-core dev machine; generous for CI
