"""The dedup reduce alone, before/after: the single-process merge (one task per band, one
union-find and all keeper columns in the driver; ``base.reference_decision``) vs the
partitioned reduce (``reduce.partitioned_decision``, P = 1 and 4) on the same artifacts.

Each variant runs in a fresh subprocess with the local executor's pool (``--workers``), so
its peak RSS is its own: the driver's (``ru_maxrss`` of the process) and the largest
task's (``ru_maxrss`` of its pool children; forked, so it includes what the driver held at
fork time).  Also checks that every variant writes the same decision.

Artifacts: a run of ``benchmarks/dedup_scale.py`` (1M SFT records), so run that first.

    .venv/bin/python benchmarks/dedup_merge.py [--run .cache/dedup/scale-1000000/run] [--workers 2]
Writes benchmarks/results/dedup_merge.json.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGES = {"exact_dedup": "global-00-exact_dedup", "minhash_dedup": "global-01-minhash_dedup"}


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def child(variant: str, art: str, state: str, workers: int) -> None:
    import numpy as np

    from thresher.dedup.base import Sources, reference_decision
    from thresher.dedup.minhash import verify_cutoff
    from thresher.dedup.reduce import partitioned_decision
    from thresher.executor.local import LocalExecutor
    from thresher.pipeline import StageContext
    sources = Sources.of_run(art)
    n_bands = int(np.load(sources.prefixes()[0] + ".bands.npy", mmap_mode="r").shape[0])
    minhash = os.path.exists(sources.prefixes()[0] + ".sig.npy")
    verify = verify_cutoff(0.7, 128, 3.0) if minhash else 0.0
    ex = LocalExecutor(workers)
    ctx = StageContext(run_dir=state, artifact_dir=art, state_dir=state, workers=workers, parallel_map=ex.parallel_map)
    base = rss_mb()
    t0 = time.time()
    if variant == "reference":
        stats = reference_decision(ctx, sources, n_bands, verify, "longest", minhash)
    else:
        stats = partitioned_decision(ctx, sources, n_bands, verify, "longest", minhash, partitions=int(variant[1:]))
    out = {"seconds": round(time.time() - t0, 2), "driver_base_mb": round(base, 1),
           "driver_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           "largest_task_peak_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
           "stats": stats}
    print(json.dumps(out))


def same_decision(a: str, b: str) -> bool:
    import numpy as np
    with np.load(os.path.join(a, "decision.npz")) as x, np.load(os.path.join(b, "decision.npz")) as y:
        return all(x[k].tolist() == y[k].tolist() for k in x.files)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=os.path.join(ROOT, ".cache", "dedup", "scale-1000000", "run"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--variants", default="reference,P1,P4")
    ap.add_argument("--child", nargs=3, metavar=("VARIANT", "ARTIFACTS", "STATE"))
    args = ap.parse_args()
    if args.child:
        child(*args.child, args.workers)
        return 0
    if not os.path.isdir(os.path.join(args.run, "work")):
        print(f"{args.run}: no run (run benchmarks/dedup_scale.py first)", file=sys.stderr)
        return 1
    results, tmp = {}, tempfile.mkdtemp(prefix="dedup_merge-")
    for stage, sub in STAGES.items():
        art = os.path.join(args.run, "work", sub, "artifacts")
        results[stage] = {}
        for variant in args.variants.split(","):
            state = os.path.join(tmp, stage, variant)
            os.makedirs(state)
            cmd = [sys.executable, __file__, "--workers", str(args.workers), "--child", variant, art, state]
            p = subprocess.run(cmd, capture_output=True, text=True, check=True)
            results[stage][variant] = json.loads(p.stdout.strip().splitlines()[-1])
            results[stage][variant]["same_decision_as_reference"] = same_decision(
                os.path.join(tmp, stage, "reference"), state) if variant != "reference" else True
            print(stage, variant, json.dumps(results[stage][variant]), flush=True)
    out = {"artifacts": os.path.relpath(args.run, ROOT), "workers": args.workers, "results": results}
    with open(os.path.join(ROOT, "benchmarks", "results", "dedup_merge.json"), "w") as f:
        json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
