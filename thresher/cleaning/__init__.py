"""Chinese-first heuristic cleaning rules: normalisers, PII masking, filters.

Importing this package registers every rule as a recipe stage.
"""
from . import blacklist, extract, langid, normalize, pii, quality, sft  # noqa: F401  (registration side effects)
from . import boilerplate  # noqa: F401,E402  (boilerplate_trimmer, repeated_boilerplate)
from . import spam  # noqa: F401,E402  (spam_filter: measured before boilerplate trimming)
