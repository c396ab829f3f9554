"""Scoring, clustering, tiers and the curation report.

Importing this package registers the stages (``quality_heuristic``,
``difficulty_heuristic``, ``quality_fasttext``, ``quality_reference``, ``ifd``, ``perplexity``, ``cluster``,
``tier``).  Heavy dependencies (scikit-learn, torch, transformers, fasttext) are
imported inside the functions/``setup`` that need them, so a cleaning-only install
can still import thresher.
"""
from . import cluster, fasttext_quality, heuristic, lm, reference_quality, tiers  # noqa: F401  (registration)
