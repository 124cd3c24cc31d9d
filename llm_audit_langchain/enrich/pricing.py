"""Local pricing of token usage: genai-prices' bundled price data, user overrides on top.

:func:`calculate_cost` turns the tokens of one call into USD, offline. Prices come from
`genai-prices <https://pypi.org/project/genai-prices/>`_ (its snapshot bundled with the package;
nothing here starts its ``UpdatePrices`` downloader), unless an override names the model. An
unknown price gives ``None`` and one warning per model id, never a fake 0.

Example::

    >>> from llm_audit_langchain.enrich.pricing import calculate_cost, set_price_overrides
    >>> calculate_cost("us.anthropic.claude-3-haiku-20240307-v1:0", 1000, 500)
    0.000875
    >>> set_price_overrides({"my-model": {"input": 1.0, "output": 2.0}})   # USD per 1M tokens
    >>> calculate_cost("my-model", 1_000_000, 0)
    1.0

Each (model id, provider) is resolved once and memoized: with flat prices a repeated call does a
dict lookup and four multiplications. Models whose genai-prices entry is tiered or changes over
time are priced by genai-prices on every call (slower, still local). Thread-safe.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from genai_prices import Usage, calc_price
from genai_prices.types import ModelPrice, TieredPrices

from ..errors import ConfigError
from ..forksafe import renew_after_fork

__all__ = ["calculate_cost", "normalize_model_id", "set_price_overrides"]

logger = logging.getLogger("llm_audit_langchain")

OVERRIDES_ENV = "AUDIT_PRICE_OVERRIDES"
_PER_MILLION = Decimal(1_000_000)
_OVERRIDE_KEYS = frozenset({"input", "output", "cache_read", "cache_write"})
_MEMO_LIMIT = 4096
_WARNED_LIMIT = 1024  # distinct warnings (one per unknown model id) logged at most


@dataclass(frozen=True, slots=True)
class _Tokens:
    uncached_input: int
    output: int
    cache_read: int
    cache_write: int


@dataclass(frozen=True, slots=True)
class _Rates:
    """Flat USD-per-token rates: the fast path (overrides and flat genai-prices entries)."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal

    def cost(self, tokens: _Tokens) -> Decimal:
        return (
            self.input * tokens.uncached_input
            + self.output * tokens.output
            + self.cache_read * tokens.cache_read
            + self.cache_write * tokens.cache_write
        )


@dataclass(frozen=True, slots=True)
class _GenaiPricer:
    """A genai-prices entry priced per call: tiered or time-dependent prices."""

    model_ref: str
    provider_id: str | None
    prices_cache_read: bool
    prices_cache_write: bool

    def cost(self, tokens: _Tokens) -> Decimal:
        # Cache tokens without a rate of their own stay in input_tokens, at the input rate.
        cache_read = tokens.cache_read if self.prices_cache_read else 0
        cache_write = tokens.cache_write if self.prices_cache_write else 0
        input_tokens = tokens.uncached_input + tokens.cache_read + tokens.cache_write
        usage = Usage(
            input_tokens=input_tokens,
            output_tokens=tokens.output,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
        )
        return Decimal(_calc(usage, self.model_ref, self.provider_id).total_price)


_Pricer = _Rates | _GenaiPricer


# --- model ids --------------------------------------------------------------------------------

# Bedrock cross-region inference profiles: "us.anthropic.…", "global.anthropic.…", …
_REGION_PREFIX = re.compile(r"^(?:us-gov|us|eu|apac|global|jp|au|ca)\.(?=[a-z0-9-]+\.)")
# Bedrock context-window variants: "…-v1:0:200k", "…-v1:0:mm"
_CONTEXT_SUFFIX = re.compile(r":(?:\d+k|mm)$")
_BEDROCK_VENDOR = re.compile(
    r"^(?:anthropic|amazon|meta|mistral|cohere|ai21|deepseek|qwen|openai|writer|twelvelabs"
    r"|stability|moonshot|minimax)\.[a-z0-9]"
)


def normalize_model_id(model_id: str) -> str:
    """The bare, lowercase model id behind a provider's way of naming it.

    - Bedrock ARNs keep their last path part: ``arn:aws:bedrock:…:foundation-model/X`` and
      ``…:inference-profile/us.X`` give ``X`` (an application inference profile's ARN ends in an
      opaque id: pass the base model id instead, as ``ChatBedrockConverse(base_model_id=…)`` does).
    - Provider prefixes go: ``openai/gpt-4o`` gives ``gpt-4o``.
    - Bedrock region and cross-region prefixes go: ``us.``, ``us-gov.``, ``eu.``, ``apac.``,
      ``global.``, ``jp.``, ``au.``, ``ca.``.
    - Bedrock context-window suffixes go (``:200k``, ``:mm``); version suffixes such as
      ``-v1:0`` stay, genai-prices matches them.

    Example::

        >>> normalize_model_id("arn:aws:bedrock:us-east-1:123:inference-profile/"
        ...                    "us.anthropic.claude-3-haiku-20240307-v1:0")
        'anthropic.claude-3-haiku-20240307-v1:0'
    """
    ref = model_id.strip().lower()
    if "/" in ref:
        ref = ref.rsplit("/", 1)[-1]
    ref = _REGION_PREFIX.sub("", ref)
    return _CONTEXT_SUFFIX.sub("", ref)


def _looks_bedrock(model_id: str) -> bool:
    lowered = model_id.strip().lower()
    return lowered.startswith("arn:aws:bedrock:") or bool(
        _BEDROCK_VENDOR.match(normalize_model_id(lowered))
    )


# --- genai-prices -----------------------------------------------------------------------------


def _calc(usage: Usage, model_ref: str, provider_id: str | None) -> Any:
    return calc_price(usage, model_ref, provider_id=provider_id)


def _probe(model_ref: str, provider_id: str | None, **tokens: int) -> Decimal:
    return Decimal(_calc(Usage(**tokens), model_ref, provider_id).total_price)


def _is_flat(calculation: Any) -> bool:
    """True when the entry has one price set (no time conditions) and no tiered price."""
    model_price = calculation.model_price
    return isinstance(calculation.model.prices, ModelPrice) and not any(
        isinstance(value, TieredPrices) for value in vars(model_price).values()
    )


def _genai_pricer(model_ref: str, provider_id: str | None) -> _Pricer | None:
    """Resolve one (model, provider) candidate in genai-prices, or None if it has no price."""
    million = 1_000_000
    try:
        calculation = _calc(Usage(input_tokens=million, output_tokens=0), model_ref, provider_id)
    except LookupError:
        return None
    model_price = calculation.model_price
    knows_read = model_price.cache_read_mtok is not None
    knows_write = (
        model_price.cache_write_mtok is not None or model_price.cache_write_5m_mtok is not None
    )
    if not _is_flat(calculation):
        return _GenaiPricer(model_ref, provider_id, knows_read, knows_write)
    rate_in = Decimal(calculation.total_price) / million
    # Flat prices are linear in each token kind: one probe per kind gives its rate.
    return _Rates(
        input=rate_in,
        output=_probe(model_ref, provider_id, input_tokens=0, output_tokens=million) / million,
        cache_read=_probe(model_ref, provider_id, input_tokens=million, cache_read_tokens=million)
        / million
        if knows_read
        else rate_in,
        cache_write=_probe(model_ref, provider_id, input_tokens=million, cache_write_tokens=million)
        / million
        if knows_write
        else rate_in,
    )


def _genai_candidates(model_id: str, provider: str | None) -> list[tuple[str, str | None]]:
    """(model ref, provider id) pairs to try, most specific first.

    A provider the caller names is the only one tried: a local model (``ls_provider="ollama"``)
    must not be priced as a hosted model that happens to share its name.
    """
    refs = list(dict.fromkeys([model_id, normalize_model_id(model_id)]))
    if provider:
        providers: list[str | None] = [provider]
    else:
        providers = ["aws", None] if _looks_bedrock(model_id) else [None]
    return [(ref, prov) for prov in providers for ref in refs]


# --- overrides --------------------------------------------------------------------------------


def _rate(model: str, key: str, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"price override {model!r}.{key} must be a number, got {value!r}")
    if value < 0:
        raise ConfigError(f"price override {model!r}.{key} must not be negative, got {value!r}")
    return Decimal(str(value)) / _PER_MILLION


def _override_rates(model: str, prices: Any) -> _Rates:
    if not isinstance(prices, Mapping):
        raise ConfigError(f"price override {model!r} must be a table of prices, got {prices!r}")
    unknown = set(prices) - _OVERRIDE_KEYS
    missing = {"input", "output"} - set(prices)
    if unknown or missing:
        raise ConfigError(
            f"price override {model!r}: unknown keys {sorted(unknown)}, missing {sorted(missing)}"
            f" (allowed: {sorted(_OVERRIDE_KEYS)}, USD per 1M tokens)"
        )
    rate_in = _rate(model, "input", prices["input"])
    return _Rates(
        input=rate_in,
        output=_rate(model, "output", prices["output"]),
        cache_read=_rate(model, "cache_read", prices.get("cache_read", prices["input"])),
        cache_write=_rate(model, "cache_write", prices.get("cache_write", prices["input"])),
    )


def _read_override_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
        return tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (OSError, ValueError) as error:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise ConfigError(f"cannot read price overrides from {path}: {error}") from error


def _parse_overrides(
    overrides: Mapping[str, Mapping[str, float]] | str | os.PathLike[str],
) -> dict[str, _Rates]:
    raw = overrides if isinstance(overrides, Mapping) else _read_override_file(Path(overrides))
    if not isinstance(raw, Mapping):
        raise ConfigError(f"price overrides must map model ids to prices, got {type(raw)}")
    return {
        str(model).strip().lower(): _override_rates(model, prices) for model, prices in raw.items()
    }


# --- the price book ---------------------------------------------------------------------------


class _PriceBook:
    """Overrides, memoized resolutions and the warnings already given, behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        renew_after_fork(self, "_lock")
        self._overrides: dict[str, _Rates] = {}
        self._configured = False  # False until set_price_overrides or the env var was read
        self._memo: dict[tuple[str, str | None], _Pricer | None] = {}
        self._warned: set[str] = set()

    def set_overrides(self, overrides: dict[str, _Rates]) -> None:
        with self._lock:
            self._overrides = overrides
            self._configured = True
            self._memo.clear()

    def pricer(self, model_id: str, provider: str | None) -> _Pricer | None:
        key = (model_id, provider)
        try:
            return self._memo[key]
        except KeyError:
            pass
        with self._lock:
            self._load_env_once()
            if key not in self._memo:
                if len(self._memo) >= _MEMO_LIMIT:
                    self._memo.clear()
                self._memo[key] = self._resolve(model_id, provider)
            return self._memo[key]

    def warn_once(self, cause: str, message: str, *args: object) -> None:
        with self._lock:
            if cause in self._warned or len(self._warned) > _WARNED_LIMIT:
                return
            self._warned.add(cause)
            if len(self._warned) > _WARNED_LIMIT:  # model ids come from callers: stay bounded
                message, args = ("llm-audit pricing: %d distinct price warnings given; further "
                                 "ones are not logged", (_WARNED_LIMIT,))
        logger.warning(message, *args)

    def _resolve(self, model_id: str, provider: str | None) -> _Pricer | None:
        lowered = model_id.strip().lower()
        for ref in (lowered, normalize_model_id(lowered)):
            if ref in self._overrides:
                return self._overrides[ref]
        for ref, prov in _genai_candidates(model_id, provider):
            if (found := _genai_pricer(ref, prov)) is not None:
                return found
        return None

    def _load_env_once(self) -> None:
        if self._configured:
            return
        self._configured = True
        path = os.environ.get(OVERRIDES_ENV)
        if not path:
            return
        try:
            self._overrides = _parse_overrides(path)
        except ConfigError as error:
            logger.warning("%s ignored: %s", OVERRIDES_ENV, error)


_book = _PriceBook()


def set_price_overrides(
    overrides: Mapping[str, Mapping[str, float]] | str | os.PathLike[str] | None,
) -> None:
    """Replace the price overrides; they win over genai-prices.

    ``overrides`` maps a model id to USD per 1M tokens::

        {"my-model": {"input": 1.0, "output": 2.0, "cache_read": 0.1, "cache_write": 1.25}}

    ``input`` and ``output`` are required; ``cache_read`` and ``cache_write`` default to the
    input price. It may also be the path of a JSON file of that shape, or of a TOML file
    (``.toml``) with one table per model (``["my-model"]`` then ``input = 1.0`` …). Model ids match
    case-insensitively, as given or after :func:`normalize_model_id`. ``None`` removes every
    override. Until this is first called, the file named by ``AUDIT_PRICE_OVERRIDES`` (if set)
    is loaded on the first price lookup; an unreadable file there is logged and ignored.

    Raises:
        ConfigError: the file cannot be read, or a price is missing, negative or not a number.
    """
    _book.set_overrides({} if overrides is None else _parse_overrides(overrides))


def _tokens(
    model_id: str,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int | None,
    cache_write_tokens: int | None,
) -> _Tokens | None:
    cache_read, cache_write = cache_read_tokens or 0, cache_write_tokens or 0
    uncached = input_tokens - cache_read - cache_write
    if min(uncached, output_tokens, cache_read, cache_write) < 0:
        _book.warn_once(
            f"tokens:{model_id}",
            "Inconsistent token counts for %r (input %s must include cache read %s and write %s,"
            " none negative): cost_usd is None",
            model_id,
            input_tokens,
            cache_read,
            cache_write,
        )
        return None
    return _Tokens(uncached, output_tokens, cache_read, cache_write)


def calculate_cost(
    model_id: str | None,
    input_tokens: int | None,
    output_tokens: int | None,
    *,
    cache_read_tokens: int | None = None,
    cache_write_tokens: int | None = None,
    provider: str | None = None,
) -> float | None:
    """The cost in USD of one call, or ``None`` when it cannot be known.

    ``input_tokens`` is inclusive of ``cache_read_tokens`` and ``cache_write_tokens`` (LangChain's
    ``usage_metadata`` convention, and genai-prices'); those are priced at their own rates where
    the price data has them, else at the input rate. ``provider`` is a LangChain ``ls_provider``
    or a genai-prices provider id (``"amazon_bedrock"`` and ``"aws"`` both mean Bedrock); when
    given, only that provider's prices are used. Without it, Bedrock-style ids are looked up in
    Bedrock's prices, others wherever genai-prices finds them.

    ``None`` tokens give ``None``. An unknown model gives ``None`` and one logged warning per
    model id (logger ``llm_audit_langchain``), never 0.

    Example::

        >>> calculate_cost("anthropic.claude-3-haiku-20240307-v1:0", 1000, 500)
        0.000875
    """
    if input_tokens is None or output_tokens is None:
        return None
    if not model_id:
        _book.warn_once("model:", "No model id for an LLM call: cost_usd is None")
        return None
    pricer = _book.pricer(model_id, provider)
    if pricer is None:
        _book.warn_once(
            f"model:{model_id}",
            "No price known for model %r (provider %r): cost_usd is None; add it with "
            "set_price_overrides() or %s",
            model_id,
            provider,
            OVERRIDES_ENV,
        )
        return None
    tokens = _tokens(model_id, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens)
    if tokens is None:
        return None
    try:
        return float(pricer.cost(tokens))
    except (ArithmeticError, LookupError, ValueError) as error:  # genai-prices rejected usage
        _book.warn_once(f"calc:{model_id}", "Cannot price %r: %s", model_id, error)
        return None


@functools.lru_cache(maxsize=1024)
def context_window(model_id: str | None, provider: str | None = None) -> int | None:
    """The model's context window in tokens when genai-prices knows it, else None."""
    if not model_id:
        return None
    for ref, prov in _genai_candidates(model_id, provider):
        try:
            found = _calc(Usage(input_tokens=1, output_tokens=0), ref, prov).model.context_window
        except LookupError:
            continue
        return int(found) if found else None
    return None
