"""The pipeline: a bounded queue and one worker thread that builds, enriches, observes, samples
and sanitizes events, then hands batches to the exporters. Imports ``enrich``, ``privacy`` and
``exporters``; never ``capture``. Protocols shared by its parts live in ``base``."""

from .base import Processor, Sampler
from .worker import Pipeline

__all__ = ["Pipeline", "Processor", "Sampler"]
