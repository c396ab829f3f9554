"""Scoring, clustering, tiers and the curation report.

Importing this package registers the stages (``quality_heuristic``,
``difficulty_heuristic``, ``quality_fasttext``, ``ifd``, ``perplexity``, ``cluster``,
``tier``).  Heavy dependencies (scikit-learn, torch, transformers, fasttext) are
imported inside the functions/``setup`` that need them, so a cleaning-only install
can still import thresher.
"""
from . import cluster, fasttext_quality, heuristic, lm, tiers  # noqa: F401  (registration)
