"""Peak memory of minhash_dedup vs record count and text length.

Claim under test (docs/dedup.md): the reduce holds band buckets, keeper columns and the
union-find forest, so its memory grows with the number of records and not with their
length; the per-shard collect holds one shard's records (text) plus a batch's shingles.

Synthetic Chinese records of ~200 or ~2,000 characters (random common characters;
every 10th record an edited copy (2% substitutions) of the record 5,001 rows earlier, so
about half the duplicate pairs cross shards).  Shards of a fixed 10,000 records so both
lengths have the same shard count.  The stage's own collect/reduce run as the executor
runs them: collect one process per shard (2 at a time), reduce in the driver with band
tasks on a pool of 2 (``ctx.pmap``).  Each configuration runs in a fresh driver process.

Measured: peak RSS (``ru_maxrss``) of every collect process, of the driver during the
reduce, of every band-task process (fresh process per task), and the peak of the sum
driver + live workers sampled every 20 ms with psutil during the reduce.

    .venv/bin/python benchmarks/dedup_memory.py [--sizes 20000:200,100000:200,...]
Writes benchmarks/results/dedup_memory.{json,md}.
"""
import argparse
import json
import multiprocessing as mp
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
COMMON = ("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后"
          "多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由"
          "其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月")
PER_SHARD, WORKERS, DUP_EVERY, DUP_BACK = 10_000, 2, 10, 5_001  # a source row is never itself a copy
DEFAULT_SIZES = "20000:200,100000:200,300000:200,20000:2000,100000:2000"
STAGE = {"threshold": 0.7, "ngram": 5, "num_perm": 128}


def record_text(i: int, chars: int) -> str:
    """Row i, deterministic; duplicates are re-generated from their source row."""
    alphabet = np.frombuffer(COMMON.encode("utf-32-le"), np.uint32)
    src = i - DUP_BACK if i % DUP_EVERY == DUP_EVERY - 1 and i >= DUP_BACK else i
    rng = np.random.default_rng(src)
    cps = alphabet[rng.integers(0, len(alphabet), chars, dtype=np.int32)]
    if src != i:
        r2 = np.random.default_rng(10**9 + i)
        pos = r2.integers(0, chars, max(1, chars // 50))
        cps[pos] = alphabet[r2.integers(0, len(alphabet), len(pos))]
    cps[np.arange(20, chars, 25)] = ord("，")  # clause punctuation like real text
    return cps.tobytes().decode("utf-32-le")


def ctx_for(work: str, shard: int = -1, pmap=None):
    from thresher.pipeline import StageContext
    return StageContext(run_dir=work, artifact_dir=os.path.join(work, "artifacts"),
                        state_dir=os.path.join(work, "state"), shard_index=shard, parallel_map=pmap)


def collect_task(args) -> dict:
    shard, lo, hi, chars, work = args
    from thresher.dedup.stages import MinHashDedup
    from thresher.records import make_record
    stage = MinHashDedup(**STAGE)
    records = [make_record("text", "synth", text=record_text(i, chars), origin=f"synth:{i}") for i in range(lo, hi)]
    t0 = time.perf_counter()
    stage.collect(records, ctx_for(work, shard))
    return {"shard": shard, "seconds": time.perf_counter() - t0,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def measured(args):
    """Run one reduce task and report this (fresh) process's peak RSS with its result."""
    fn, item = args
    out = fn(item)
    return out, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class TreeSampler(threading.Thread):
    """Peak of the summed RSS of this process and its live children."""

    def __init__(self):
        super().__init__(daemon=True)
        import psutil
        self.proc, self.peak, self.stop = psutil.Process(), 0.0, threading.Event()

    def run(self):
        import psutil
        while not self.stop.is_set():
            total = 0
            try:
                total = self.proc.memory_info().rss
                for c in self.proc.children(recursive=True):
                    try:
                        total += c.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            self.peak = max(self.peak, total / 2**20)
            time.sleep(0.02)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) / 1024 for l in f if l.startswith("VmRSS:"))


def child(n: int, chars: int) -> dict:
    from thresher.dedup.minhash import char_classes, fold_table
    from thresher.dedup.stages import MinHashDedup
    char_classes(), fold_table()  # built once per process, not data-dependent
    work = tempfile.mkdtemp(prefix="dedup-mem-", dir=os.path.join(ROOT, ".cache"))
    os.makedirs(os.path.join(work, "state"))
    try:
        ctxmp = mp.get_context("fork")
        shards = [(s, lo, min(lo + PER_SHARD, n), chars, work) for s, lo in enumerate(range(0, n, PER_SHARD))]
        t0 = time.perf_counter()
        with ctxmp.Pool(WORKERS, maxtasksperchild=1) as pool:
            col = pool.map(collect_task, shards, chunksize=1)
        t_collect = time.perf_counter() - t0
        art = os.path.join(work, "artifacts")
        art_bytes = sum(os.path.getsize(os.path.join(art, f)) for f in os.listdir(art))
        sig_bytes = sum(os.path.getsize(os.path.join(art, f)) for f in os.listdir(art) if f.endswith(".sig.npy"))
        task_peaks: list[float] = []
        base = rss_mb()
        sampler = TreeSampler()
        with ctxmp.Pool(WORKERS, maxtasksperchild=1) as pool:
            def pmap(fn, items):
                out = pool.map(measured, [(fn, x) for x in items], chunksize=1)
                task_peaks.extend(p for _, p in out)
                return [r for r, _ in out]
            sampler.start()
            t0 = time.perf_counter()
            stats = MinHashDedup(**STAGE).reduce(ctx_for(work, pmap=pmap))
            t_reduce = time.perf_counter() - t0
            sampler.stop.set()
            sampler.join()
        driver_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        decision = os.path.getsize(os.path.join(work, "state", "decision.npz"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"records": n, "chars_per_record": chars, "shards": len(shards),
            "collect_seconds": round(t_collect, 1), "reduce_seconds": round(t_reduce, 2),
            "collect_worker_peak_mb": round(max(c["peak_rss_mb"] for c in col), 1),
            "driver_base_mb": round(base, 1), "driver_peak_mb": round(driver_peak, 1),
            "driver_reduce_over_base_mb": round(driver_peak - base, 1),
            "band_task_peak_mb": round(max(task_peaks), 1) if task_peaks else None,
            "reduce_tree_peak_mb": round(sampler.peak, 1),
            "artifact_mb": round(art_bytes / 2**20, 1), "signature_mb": round(sig_bytes / 2**20, 1),
            "decision_kb": round(decision / 1024, 1), "dropped": stats["dropped"], "edges": stats["edges"]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child")
    ap.add_argument("--sizes", default=DEFAULT_SIZES)
    args = ap.parse_args()
    if args.child:
        n, chars = map(int, args.child.split(":"))
        print("RESULT " + json.dumps(child(n, chars)), flush=True)
        return 0
    os.makedirs(os.path.join(ROOT, ".cache"), exist_ok=True)
    rows = []
    for spec in args.sizes.split(","):
        p = subprocess.run([sys.executable, __file__, "--child", spec], capture_output=True, text=True, cwd=ROOT)
        line = next((l for l in p.stdout.splitlines() if l.startswith("RESULT ")), None)
        if line is None:
            print(p.stderr[-2000:], file=sys.stderr)
            return 1
        rows.append(json.loads(line[7:]))
        print(json.dumps(rows[-1]), flush=True)
    res = {"stage": STAGE, "records_per_shard": PER_SHARD, "workers": WORKERS, "cpu_count": os.cpu_count(), "runs": rows}
    with open(os.path.join(ROOT, "benchmarks", "results", "dedup_memory.json"), "w") as f:
        json.dump(res, f, indent=2)
    md = ["# dedup_memory", "",
          f"minhash_dedup {STAGE}; shards of {PER_SHARD:,} records; {WORKERS} worker processes; "
          "every 10th record an edited copy.  MB = peak RSS (ru_maxrss) unless noted; 2-core shared machine.", "",
          "| records | chars/rec | collect worker peak | driver reduce over base | band task peak | "
          "reduce driver+workers (sampled) | artifacts MB (signatures) | reduce s | dropped |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['records']:,} | {r['chars_per_record']:,} | {r['collect_worker_peak_mb']} | "
                  f"{r['driver_reduce_over_base_mb']} | {r['band_task_peak_mb']} | {r['reduce_tree_peak_mb']} | "
                  f"{r['artifact_mb']} ({r['signature_mb']}) | {r['reduce_seconds']} | {r['dropped']:,} |")
    with open(os.path.join(ROOT, "benchmarks", "results", "dedup_memory.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
