"""``thresher semdedup-sweep RUN``: the SemDeDup similarity histogram and eps sweep of a run,
to choose eps before dropping anything (run once with ``dry_run: true``).

``thresher semdedup-sweep --pairs PAIRS.tsv [--format sts] [--embedder e5]``: the precision /
recall curve over eps on labelled pairs, with the stage's rule (cos > 1 - eps) and embedder
build, the calibrated default marked -- how ``CALIBRATED_EPS`` was chosen."""
from __future__ import annotations

import argparse
import glob
import os
import sys

import numpy as np

from .semantic import SWEEP_EPS, load_sweep, sweep_table


def sweep_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="thresher semdedup-sweep", description=__doc__.split("\n")[0])
    ap.add_argument("run", nargs="?", help="run output directory")
    ap.add_argument("--eps", default="", help="comma list of eps values (default: the stored sweep)")
    ap.add_argument("--pairs", default="", help="labelled pairs: print the P/R curve over eps instead")
    ap.add_argument("--format", choices=("tsv", "sts", "qqp", "mrpc"), default="tsv")
    ap.add_argument("--embedder", default="e5", help="e5 | hashed | tfidf_svd | sentence_transformers")
    ap.add_argument("--model-path", default="", help="sentence_transformers model directory")
    args = ap.parse_args(argv)
    if args.pairs:
        return _pairs_curve(args)
    if not args.run:
        ap.error("give a run directory or --pairs")
    from ..rundir import RunDir
    states = sorted(glob.glob(RunDir(args.run).global_state("*", "*semantic_dedup*")))
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


def _pairs_curve(args) -> int:
    from .evaluate import prf, read_pairs, semantic_cosines
    from .semantic import default_eps, stage_embedder_params
    rows = read_pairs(args.pairs, args.format)
    if not rows:
        print(f"no labelled pairs read from {args.pairs}", file=sys.stderr)
        return 2
    emb = stage_embedder_params({"backend": args.embedder, **({"model_path": args.model_path} if args.model_path
                                                                 else {})})
    cos = semantic_cosines([r[0] for r in rows], [r[1] for r in rows], emb)
    gold = np.array([r[2] == 1 for r in rows])
    dflt = default_eps(emb)
    eps_values = sorted({*([float(x) for x in args.eps.split(",") if x] or SWEEP_EPS), dflt})
    print(f"{args.pairs}: {len(rows)} pairs ({int(gold.sum())} positive), embedder {args.embedder}")
    print(f"  {'eps':>7}{'cos >':>8}{'P':>8}{'R':>8}{'F1':>8}{'pred+':>8}")
    for e in eps_values:
        r = prf(cos > 1 - e, gold)
        mark = "  <- default" if e == dflt else ""
        print(f"  {e:>7}{round(1 - e, 4):>8}{r['precision']:>8.3f}{r['recall']:>8.3f}{r['f1']:>8.3f}"
              f"{r['predicted']:>8}{mark}")
    return 0
