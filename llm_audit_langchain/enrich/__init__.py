"""Enrichment, on the worker thread: token usage from any provider's response (``usage``),
offline token estimates (``tokens``), prices (``pricing``) and cost roll-ups per trace, node,
model, thread and user (``rollup``). Imports only the event model and errors."""
