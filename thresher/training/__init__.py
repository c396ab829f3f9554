"""SFT / DPO / rounds trainer for thresher-curated data (``thresher train ...``).

Kept import-light: torch, transformers and deepspeed are imported by the modules
that need them, so ``import thresher.training`` works without the ``train`` extra.
"""
