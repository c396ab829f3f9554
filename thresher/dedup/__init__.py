"""Deduplication: exact (normalised keys, SFT-aware), MinHash LSH near-dup, CCNet-style
line dedup, SemDeDup, and a persisted index for incremental / cross-corpus dedup.

Importing the package registers the stages; heavy optional dependencies (sklearn,
embedders) are imported inside the functions that need them."""
from . import lines, semantic, stages  # noqa: F401  (register stages)
