"""Worker-side processors: enrich (usage, cost, environment) → [sample] → sanitize.

Each processor is a plain function ``(AuditEvent) -> AuditEvent | None`` (structlog's shape):
small, testable alone, composable in a list. They run on the pipeline's worker thread, never on
the caller's hot path. Raw objects the handler attached under ``data["_raw"]`` are read here and
removed before the sanitizer; nothing raw reaches an exporter.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from collections.abc import Callable
from functools import cache
from importlib import metadata as importlib_metadata
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..enrich.tokens import chars_by_role
from ..events import AuditEvent, AuditEventType
from .base import Processor, Sampler

if TYPE_CHECKING:
    from ..config import AuditConfig
    from ..privacy.sanitizer import Sanitizer

_PACKAGES = ("llm-audit-langchain", "langchain-core", "langgraph", "langchain-aws", "pydantic")
_LLM_EVENTS = (AuditEventType.LLM_INVOKE, AuditEventType.LLM_ERROR)


@cache
def _usage_and_pricing() -> tuple[ModuleType, ModuleType]:
    """usage.py and pricing.py, imported on first use (tiktoken and genai-prices are heavy)
    and then without an import statement per event."""
    from ..enrich import pricing, usage

    return usage, pricing


def price_llm_call(event: AuditEvent) -> AuditEvent:
    """Fill tokens, model and cost of an ``llm.invoke`` from the raw response (usage.py,
    pricing.py). Unknown usage stays ``None``; an unknown price gives ``cost_usd=None``."""
    if event.event_type not in _LLM_EVENTS:
        return event
    usage_module, pricing = _usage_and_pricing()
    raw = event.data.get("_raw") or {}
    response = raw.get("response")
    start_metadata = raw.get("metadata")
    params = event.data.get("invocation_params")
    event.model = usage_module.model_id_from(response, start_metadata, params)
    if isinstance(start_metadata, dict) and start_metadata.get("prompt_version") is not None:
        event.data["prompt_version"] = start_metadata["prompt_version"]  # for decision records
    if event.data.get("provider") is None:
        event.data["provider"] = usage_module.provider_from(start_metadata, params)
    if response is None:
        return event
    usage = usage_module.extract_usage(response, prompt_messages=event.data.get("messages"),
                                       model=event.model)
    event.data["usage"] = usage.as_dict()
    if event.data.get("cache_hit"):  # served by LangChain's cache: the provider billed nothing
        event.tokens_input = event.tokens_output = 0
        event.cost_usd = 0.0
        return event
    event.tokens_input, event.tokens_output = usage.input_tokens, usage.output_tokens
    event.cost_usd = pricing.calculate_cost(
        event.model, usage.input_tokens, usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens, cache_write_tokens=usage.cache_write_tokens,
        provider=event.data.get("provider"),
    )
    return event


def measure_prompt_efficiency(event: AuditEvent) -> AuditEvent:
    """Fill a ``prompt.efficiency`` event from its LLM call (already enriched: FIFO order):
    prompt tokens by role (the reported input tokens split by each role's share of the prompt
    characters), system-prompt share, cache-read share, output/input ratio, context-window use."""
    if event.event_type is not AuditEventType.PROMPT_EFFICIENCY:
        return event
    context_window = _usage_and_pricing()[1].context_window

    raw = event.data.get("_raw") or {}
    llm = raw.get("llm")
    if llm is not None and not isinstance(llm, AuditEvent):
        llm = llm.build()  # queued unbuilt by the handler; built (and enriched) before us
    chars = chars_by_role(raw.get("prompt"))
    if not isinstance(llm, AuditEvent):
        return event
    tokens_in, tokens_out = llm.tokens_input, llm.tokens_output
    total_chars = sum(chars.values())
    usage = llm.data.get("usage") or {}
    cache_read = usage.get("cache_read_tokens") if isinstance(usage, dict) else None
    window = context_window(llm.model, llm.data.get("provider"))
    by_role = ({role: round(tokens_in * n / total_chars) for role, n in chars.items()}
               if tokens_in is not None and total_chars else None)
    event.model = llm.model
    event.data.update(
        llm_span_id=llm.span_id,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        prompt_tokens_by_role=by_role,
        split_method="char_share",
        system_share=round(chars.get("system", 0) / total_chars, 4) if total_chars else None,
        cache_read_share=round(cache_read / tokens_in, 4) if cache_read and tokens_in else 0.0,
        output_input_ratio=round(tokens_out / tokens_in, 4) if tokens_in and tokens_out is not None
        else None,
        context_window=window,
        context_window_use=round(tokens_in / window, 6) if window and tokens_in else None,
    )
    return event


@cache
def environment() -> dict[str, Any]:
    """Python, platform and package versions: what a replay of a failure needs to know."""
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = None
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "packages": versions}


def add_environment(event: AuditEvent) -> AuditEvent:
    """Attach environment metadata (and the model id, for llm errors) to every error."""
    if event.error is not None and event.error.environment is None:
        env = dict(environment())
        if event.model:
            env["model"] = event.model
        event.error.environment = env
    return event


def warm_up() -> None:
    """Import and build now what the enrichers would otherwise load on the worker's first
    events: genai-prices' price data (a 200 ms import alone) and the environment versions. Under
    a CPU-bound host thread, a worker importing that while sharing the GIL stalled for seconds
    and dropped what arrived meanwhile; done here, it costs the constructing thread instead."""
    from genai_prices import data_snapshot

    _usage_and_pricing()
    data_snapshot.get_snapshot()
    environment()


def default_processors(config: AuditConfig) -> list[Processor]:
    """The enrichers that are on by default (their data loaded now: :func:`warm_up`)."""
    warm_up()
    return [price_llm_call, measure_prompt_efficiency, add_environment]


# ``data`` keys whose values this package computes itself, skipping the sanitizer's structure
# walk (its biggest saving). Numbers, flags, span ids and usage counts computed from code are
# kept as they are; the rest (tools offered, node names, routes, providers, tool call ids) hold
# names that came from user code or a model, and every string in them still passes
# ``Sanitizer.sanitize_name`` (cached: names recur). Everything else (prompts, outputs, tool
# args, inputs, thread ids) is sanitized in full.
COMPUTED_DATA_KEYS = frozenset({
    "usage", "streamed", "chunks", "time_to_first_token_ms", "trace_root", "run_root",
    "upstream_sampled", "start_unknown", "selected_by_span_id", "cache_hit", "count", "attempt",
    "sampling", "failed_span_id", "llm_span_id", "input_tokens", "output_tokens",
    "split_method", "system_share", "cache_read_share", "output_input_ratio", "context_window",
    "context_window_use", "write_ahead",
})
TRUSTED_DATA_KEYS = COMPUTED_DATA_KEYS | frozenset({
    "langgraph", "provider", "tools_offered", "offered", "tool_call_id", "from_node",
    "destination", "source", "control_flow", "decision", "tools", "via", "primary", "backup",
    "prompt_tokens_by_role", "reason", "phase",
})

_NOT_PLAIN = object()
_COORDINATES_MEMO = 1_024


def _is_plain(value: Any) -> bool:
    """JSON-safe as it is (what the computed keys hold)."""
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_is_plain(v) for v in value)
    return False


def _coordinates_key(value: Any) -> tuple[Any, ...] | None:
    """A memo key for graph coordinates made of names, ints and tuples of names only (so equal
    keys mean equal values: ``1``, ``1.0`` and ``True`` never meet), else None."""
    if type(value) is not dict:
        return None
    for item in value.values():
        kind = type(item)
        if not (kind is str or kind is int
                or (kind is tuple and all(type(part) is str for part in item))):
            return None
    return tuple(value.items())


def _plain_with_names(value: Any, name: Callable[[str], str], depth: int = 0) -> Any:
    """``value`` with every string (and key) passed through ``name``, or ``_NOT_PLAIN`` when it
    is not plain JSON (then the whole sanitizer handles it). Written flat: it runs on every
    kept event, over graph coordinates and tool lists."""
    cls = type(value)
    if cls is str:
        return name(value)
    if value is None or cls is int or cls is float or cls is bool:
        return value
    if depth > 8:
        return _NOT_PLAIN
    if cls is dict:
        out = {}
        for key, item in value.items():
            kind = type(item)
            clean = item
            if kind is str:
                clean = name(item)
            elif not (item is None or kind is int or kind is float or kind is bool):
                clean = _plain_with_names(item, name, depth + 1)
                if clean is _NOT_PLAIN:
                    return _NOT_PLAIN
            if type(key) is not str:
                return _NOT_PLAIN
            out[name(key)] = clean
        return out
    if cls is list or cls is tuple:
        items = [_plain_with_names(item, name, depth + 1) for item in value]
        return _NOT_PLAIN if any(item is _NOT_PLAIN for item in items) else items
    return _NOT_PLAIN


def event_sanitizer(sanitizer: Sanitizer) -> Processor:
    """Sanitize everything in an event a user could have put there: names (agent, action,
    model, the names inside trusted ``data`` fields), data, error message, traceback, input
    snapshot. Returns the same event, sanitized in place."""
    name = sanitizer.sanitize_name
    # Graph coordinates recur in every event of a node (its LLM calls, routes, tool selection):
    # their sanitized form is remembered by content (bounded: cleared when full). Each event
    # gets its own dict; the path in it is a tuple, shared (nothing can change it).
    coordinates: dict[tuple[Any, ...], dict[str, Any]] = {}

    def trusted(value: Any) -> Any:
        key = _coordinates_key(value)
        if key is None:
            return _plain_with_names(value, name)
        hit = coordinates.get(key)
        if hit is None:
            plain = _plain_with_names(value, name)
            hit = {k: tuple(v) if type(v) is list else v for k, v in plain.items()}
            if len(coordinates) >= _COORDINATES_MEMO:
                coordinates.clear()
            coordinates[key] = hit
        return dict(hit)

    def sanitize_data(data: dict[str, Any]) -> dict[str, Any]:
        clean: dict[str, Any] = {}
        untrusted: dict[str, Any] = {}
        for key, value in data.items():
            if key in COMPUTED_DATA_KEYS and _is_plain(value):
                clean[key] = value
                continue
            plain = (trusted(value) if key == "langgraph" else _plain_with_names(value, name)) \
                if key in TRUSTED_DATA_KEYS else _NOT_PLAIN
            if plain is _NOT_PLAIN:
                untrusted[key] = value
            else:
                clean[key] = plain
        if untrusted:
            result = sanitizer(untrusted)
            clean.update(result if isinstance(result, dict) else {"unsanitizable": result})
        return clean

    def sanitize_event(event: AuditEvent) -> AuditEvent:
        # Plain stores into the model's fields (pydantic's ``__setattr__`` costs a call chain
        # per field and validates nothing here); every one of them was already set.
        fields = event.__dict__
        fields["agent"] = name(fields["agent"])
        fields["action"] = name(fields["action"])
        if fields["model"] is not None:
            fields["model"] = name(fields["model"])
        fields["data"] = sanitize_data(fields["data"])
        event.__pydantic_fields_set__.add("data")  # as an assignment through pydantic did
        if event.event_type is AuditEventType.CONTEXT_VERSION and "state" in event.data:
            event.data["state_hash"] = state_hash(event.data.pop("state"))
        error = event.error
        if error is not None:
            error.type = name(error.type)
            error.message = sanitizer.sanitize_text(error.message)
            if error.traceback is not None:
                error.traceback = sanitizer.sanitize_text(error.traceback)
            error.input_snapshot = sanitizer(error.input_snapshot)
            # error.environment is ours (versions, platform), but for the model id it copies
            if error.environment and error.environment.get("model") is not None:
                error.environment = {**error.environment,
                                     "model": name(error.environment["model"])}
        return event

    return sanitize_event


def state_hash(sanitized_state: Any) -> str:
    """SHA-256 of a (sanitized) graph state in canonical JSON: the same state, sanitized with
    the same settings, always gives the same hash."""
    canonical = json.dumps(sanitized_state, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def default_sanitizer(config: AuditConfig) -> Processor:
    """The sanitizer for ``config.capture`` (``redacted`` unless explicitly changed)."""
    from ..privacy.sanitizer import Sanitizer

    return event_sanitizer(Sanitizer(config.capture))


def default_sampler(config: AuditConfig) -> Sampler | None:
    """Tail sampling per trace (sampling.py), or None while it is not available."""
    try:
        from .sampling import SamplingPolicy
    except ImportError:
        return None
    return SamplingPolicy.from_config(config).sampler()
