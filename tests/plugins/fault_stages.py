"""Stages that fail on purpose (loaded through a recipe's `plugins:`), for the
per-record isolation tests: a stage raising on one record must quarantine that record
and nothing else."""
from thresher.pipeline import Stage, register


@register("t_explode_on")
class ExplodeOn(Stage):
    """Raises (a stage bug) on every record whose text contains ``marker``."""
    defaults = {"marker": "EXPLODE"}

    def process(self, r):
        if self.marker in r.full_text():
            raise ZeroDivisionError(f"stage bug triggered by {self.marker}")
        return r
