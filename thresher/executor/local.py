"""Local executor: shards fan out over a `multiprocess` pool on one machine."""
from __future__ import annotations

import queue
import threading

from .tasks import Plan, run_map_task, run_reduce_task

_POOL_STATE: dict = {}


def _init_worker(plan: Plan, progress_queue) -> None:
    _POOL_STATE["plan"] = plan
    _POOL_STATE["queue"] = progress_queue


def _report(seg: int, shard: int, n: int) -> None:
    _POOL_STATE["queue"].put(n)


def _map_one(args: tuple[int, int]) -> dict:
    seg, shard = args
    return run_map_task(_POOL_STATE["plan"], seg, shard, progress=_report)


class LocalExecutor:
    def __init__(self, workers: int):
        self.workers = workers
        self._pool = None
        self._queue = None

    def _ensure_pool(self, plan: Plan):
        if self._pool is None and self.workers > 1:
            import multiprocess as mp
            self._queue = mp.Queue()
            # each worker builds and sets up the stages once (jieba, automata, models)
            self._pool = mp.Pool(self.workers, initializer=_init_worker, initargs=(plan, self._queue))
        return self._pool

    def map_shards(self, plan: Plan, seg: int, shards: list[int], progress) -> list[dict]:
        if self.workers == 1 or len(shards) <= 1:
            return [self._track(run_map_task(plan, seg, s, progress=lambda _a, _b, n: progress.advance(n)),
                                progress) for s in shards]
        pool = self._ensure_pool(plan)
        stop = threading.Event()
        drain = threading.Thread(target=self._drain, args=(progress, stop), daemon=True)
        drain.start()
        try:
            results = [self._track(r, progress) for r in pool.imap_unordered(_map_one, [(seg, s) for s in shards])]
        finally:
            stop.set()
            drain.join()
        return results

    def _drain(self, progress, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                progress.advance(self._queue.get(timeout=0.2))
            except queue.Empty:
                continue

    @staticmethod
    def _track(result: dict, progress) -> dict:
        progress.shard_done(result, resumed=result.get("resumed", False))
        return result

    def reduce(self, plan: Plan, stage_index: int) -> dict:
        return run_reduce_task(plan, stage_index, workers=self.workers, parallel_map=self.parallel_map)

    def parallel_map(self, fn, items: list) -> list:
        """A reduce's fan-out: a fresh pool, since the map pool's workers hold stage state."""
        if self.workers == 1 or len(items) <= 1:
            return [fn(x) for x in items]
        import multiprocess as mp
        pool = mp.Pool(min(self.workers, len(items)))
        try:
            results = pool.map(fn, items)
            # close + join lets idle workers take their sentinel and exit; the context manager's
            # terminate() SIGTERMs them instead, and a run was seen hanging there for good
            pool.close()
            return results
        except BaseException:
            pool.terminate()
            raise
        finally:
            pool.join()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None
