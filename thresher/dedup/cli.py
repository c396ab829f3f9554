"""``thresher semdedup-sweep RUN``: the SemDeDup similarity histogram and eps sweep of a run,
to choose eps before dropping anything (run once with ``dry_run: true``)."""
from __future__ import annotations

import argparse
import glob
import os
import sys

import numpy as np

from .semantic import SWEEP_EPS, load_sweep, sweep_table


def sweep_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="thresher semdedup-sweep", description=__doc__.split("\n")[0])
    ap.add_argument("run", help="run output directory")
    ap.add_argument("--eps", default="", help="comma list of eps values (default: the stored sweep)")
    args = ap.parse_args(argv)
    states = sorted(glob.glob(os.path.join(args.run, "work", "global-*semantic_dedup*", "state")))
    if not states:
        print(f"{args.run}: no semantic_dedup state (keep the run's work/ dir)", file=sys.stderr)
        return 2
    for state in states:
        sw = load_sweep(state)
        print(f"{state}: {sw['records']:,} records in {sw['n_clusters']} clusters (eps used: {sw['eps']})")
        h = sw["histogram"]
        print("max cosine to a preferred member of the same cluster:")
        for lo, c in zip(h["edges"], h["counts"]):
            print(f"  [{lo:.2f}, {lo + 0.05:.2f})  {c:>9,}  " + "#" * min(60, int(60 * c / max(max(h['counts']), 1))))
        rows = sw["sweep"]
        if args.eps:
            with np.load(os.path.join(state, "maxsim.npz")) as z:
                rows = sweep_table(z["maxsim"], [float(x) for x in args.eps.split(",")] or SWEEP_EPS)
        print(f"  {'eps':>7}{'cos >':>8}{'dropped':>10}{'fraction':>10}")
        for r in rows:
            print(f"  {r['eps']:>7}{r['threshold']:>8}{r['dropped']:>10,}{r['fraction']:>10.2%}")
    return 0
