"""``python -m thresher.training sft ...`` (also what the multi-node launcher runs)."""
import sys

from thresher.training.cli import main

raise SystemExit(main(sys.argv[1:]))
