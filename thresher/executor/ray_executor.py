"""Ray executor: the same tasks as the local executor, scheduled on a Ray cluster.

Nothing about a stage changes.  A map task is ``run_map_task(plan, seg, shard)``
run as a Ray task (CPU segments) or on a pool of Ray actors (segments with a
model-backed stage, sized by the stage's ``num_gpus`` / ``num_cpus``); a reduce runs
on the driver and its ``ctx.pmap`` fan-out becomes Ray tasks.  Tasks exchange file
paths and small stats dicts, never records: shards, artifacts and state live on a
filesystem every node mounts, so the object store only carries the plan (once) and
per-shard results (~20 KB).

Fault tolerance is layered:

* a worker that dies (OOM kill, node loss) is retried by Ray (``max_retries``);
  a task is a pure function of its inputs that writes atomically, so a retry
  rewrites identical bytes;
* the driver dying loses nothing finished: every shard and reduce leaves a
  checkpoint marker, and the next ``thresher run`` skips them (checked here on the
  driver, so a resumed shard costs a file read, not a Ray task).

Recipe keys: ``executor: {type: ray, address: auto | ray://host:10001 | <unset>,
num_cpus: N, max_retries: 3}``.  Without ``address`` a private local cluster of
``num_cpus`` (default ``workers``) CPUs is started for the run and shut down after.
"""
from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections import deque

import ray

from ..config import build_stages, import_plugins
from ..log import get_logger
from .tasks import Plan, run_map_task, run_reduce_task

# thresher moves paths through Ray, not data: a small store is plenty for a local cluster
LOCAL_OBJECT_STORE_BYTES = 256 << 20
# environment a worker needs to behave like the driver (offline model loading, thresher knobs)
FORWARDED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "HF_DATASETS_OFFLINE", "TOKENIZERS_PARALLELISM")
PROGRESS_EVERY_S = 0.5
POLL_S = 0.5


# ---------------------------------------------------------------------------
# worker side

_PLAN_CACHE: dict = {}


def _cached_plan(key: str, box: list) -> Plan:
    """The plan travels as an object ref inside a list (Ray leaves nested refs alone),
    so each worker process fetches and unpickles it once per run, not once per task."""
    if _PLAN_CACHE.get("key") != key:
        _PLAN_CACHE.clear()
        _PLAN_CACHE.update(key=key, plan=ray.get(box[0]))
    return _PLAN_CACHE["plan"]


class _Reporter:
    """progress(seg, shard, n) callback of run_map_task: cumulative record counts,
    sent to the driver's sink at most every PROGRESS_EVERY_S (fire and forget)."""

    def __init__(self, sink, seg: int, shard: int):
        self.sink, self.key, self.n, self.last = sink, (seg, shard), 0, 0.0

    def __call__(self, _seg: int, _shard: int, n: int) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            self.sink.set.remote(self.key, self.n)


def _run_shard(key: str, box: list, seg: int, shard: int, sink) -> dict:
    plan = _cached_plan(key, box)
    return run_map_task(plan, seg, shard, progress=_Reporter(sink, seg, shard) if sink is not None else None)


@ray.remote
def _map_task(key: str, box: list, seg: int, shard: int, sink) -> dict:
    return _run_shard(key, box, seg, shard, sink)


@ray.remote
class _ShardActor:
    """One member of a segment's actor pool: stages (and their models) are set up on
    the first shard and stay loaded for every later shard this actor gets."""

    def run(self, key: str, box: list, seg: int, shard: int, sink) -> dict:
        return _run_shard(key, box, seg, shard, sink)


_FN_CACHE: dict = {}


@ray.remote
def _pmap_task(plugins: list, fn_blob: bytes, item_blob: bytes):
    """A reduce's fan-out item.  fn and item are pickled by the driver and unpickled
    here after the recipe's plugins are imported, so functions defined in a plugin
    file (module ``thresher_plugin_*``, not importable by name) resolve."""
    import cloudpickle
    import_plugins({"plugins": plugins})
    digest = hashlib.sha1(fn_blob).hexdigest()
    if digest not in _FN_CACHE:
        _FN_CACHE.clear()
        _FN_CACHE[digest] = cloudpickle.loads(fn_blob)
    return _FN_CACHE[digest](cloudpickle.loads(item_blob))


@ray.remote(num_cpus=0)
class _ProgressSink:
    """Live per-shard record counts of the running tasks.  A retried task restarts its
    count from zero; the driver replaces a finished shard's count by the exact one."""

    def __init__(self):
        self.counts: dict = {}
        self.finished: set = set()

    def set(self, key, n: int) -> None:
        if key not in self.finished:
            self.counts[key] = n

    def finish(self, key) -> None:
        self.finished.add(key)
        self.counts.pop(key, None)

    def live(self, seg: int) -> int:
        return sum(n for (s, _), n in self.counts.items() if s == seg)


# ---------------------------------------------------------------------------
# which segments need an actor pool

RESOURCE_KEYS = ("num_cpus", "num_gpus")


def _requested(params: dict) -> dict:
    """num_cpus / num_gpus > 0 in a stage's parameters, or one level down in a nested
    mapping (``semantic_dedup: {embedder: {num_gpus: 1}}``); the largest wins."""
    found: dict = {}
    for scope in [params, *(v for v in params.values() if isinstance(v, dict))]:
        for k in RESOURCE_KEYS:
            v = scope.get(k)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
                found[k] = max(found.get(k, 0), v)
    return found


def stage_resources(stage) -> dict | None:
    """Per-actor resources a model-backed stage asks for, or None for a plain CPU stage.

    A stage is model-backed when its class sets ``ray_actor = True`` or a
    ``ray_resources`` dict, or its recipe parameters ask for GPUs (``num_gpus > 0``,
    possibly inside a nested mapping such as ``embedder``, or ``device: cuda...``).  ``num_cpus`` / ``num_gpus``
    parameters size each actor.  A CPU-only model needs no pool: Ray reuses worker
    processes, and tasks.py keeps set-up stages per process, so it loads once per worker.
    """
    params = getattr(stage, "params", {}) or {}
    wants = _requested(params)
    if str(params.get("device") or "").startswith("cuda") and "num_gpus" not in wants:
        wants["num_gpus"] = 1  # an LM scorer on `device: cuda` needs a GPU on whichever node runs it
    explicit = dict(getattr(stage, "ray_resources", None) or {})
    if not (getattr(stage, "ray_actor", False) or explicit or wants.get("num_gpus")):
        return None
    res = {"num_cpus": 1, "num_gpus": 0}
    res.update(explicit)
    res.update(wants)
    return res


def segment_resources(plan: Plan, seg_index: int, stages=None) -> dict | None:
    """The largest per-actor demand over the stages a segment's task runs (the applied
    global stage, the map stages, the collected global stage), or None."""
    stages = stages if stages is not None else build_stages(plan.recipe)
    seg = plan.segments[seg_index]
    indices = [i for i in [seg.apply_global, *seg.map_stages, seg.collect_global] if i is not None]
    demands = [r for r in (stage_resources(stages[i]) for i in indices) if r]
    if not demands:
        return None
    return {k: max(d.get(k, 0) for d in demands) for k in RESOURCE_KEYS}


# ---------------------------------------------------------------------------
# driver side

class RayExecutor:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.max_retries = int(cfg.get("max_retries", 3))
        self._owns_ray = False
        self._plan_key: str | None = None
        self._plan_box: list | None = None
        self._plan: Plan | None = None
        self._sink = None
        self.segment_modes: dict[int, str] = {}  # what ran each segment (tasks / actors:N), for logs and tests

    # cluster ----------------------------------------------------------------
    def _ensure_ray(self) -> None:
        if ray.is_initialized():
            return  # embedded in a Ray program, or a test's shared cluster: use it as is
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        env.update({k: v for k, v in os.environ.items() if k.startswith("THRESHER_")})
        kwargs = dict(include_dashboard=False, log_to_driver=True, logging_level="WARNING",
                      runtime_env={"env_vars": env} if env else None)
        address = self.cfg.get("address")
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(address="local", num_cpus=int(self.cfg.get("num_cpus") or self.cfg["workers"]),
                     object_store_memory=LOCAL_OBJECT_STORE_BYTES, **kwargs)
        self._owns_ray = True
        res = ray.cluster_resources()
        get_logger().info("ray cluster: %d CPUs, %d GPUs, %d nodes", res.get("CPU", 0), res.get("GPU", 0),
                          len([n for n in ray.nodes() if n.get("Alive")]))

    def _plan_args(self, plan: Plan) -> tuple[str, list]:
        # the fingerprint leaves out output.dir (a run may move), so it cannot name the
        # plan in a worker's cache: two runs of one recipe into two dirs share it
        if plan is not self._plan or self._plan_box is None:
            self._plan_key, self._plan_box, self._plan = uuid.uuid4().hex, [ray.put(plan)], plan
        return self._plan_key, self._plan_box

    def _progress_sink(self):
        if self._sink is None:
            self._sink = _ProgressSink.remote()
        return self._sink

    def _slots(self, per_task: dict) -> int:
        """How many of these tasks/actors the cluster can run at once."""
        res = ray.cluster_resources()
        fits = {name: int(res.get(name, 0) // per_task[k]) for k, name in (("num_cpus", "CPU"), ("num_gpus", "GPU"))
                if per_task.get(k)}
        short = [name for name, n in fits.items() if n == 0]
        if short:  # Ray would queue the actors forever
            raise RuntimeError(f"a stage asks for {per_task} per worker but the Ray cluster has "
                               f"{ {n: res.get(n, 0) for n in short} }; add nodes or lower num_gpus/num_cpus")
        return max(min(fits.values()) if fits else 1, 1)

    # executor interface -------------------------------------------------------
    def map_shards(self, plan: Plan, seg: int, shards: list[int], progress) -> list[dict]:
        results, todo = [], []
        for s in shards:
            if os.path.exists(plan.rundir.map_marker(seg, s)):  # checkpointed: read it here, no task needed
                results.append(self._track(run_map_task(plan, seg, s), progress))
            else:
                todo.append(s)
        if not todo:
            return results
        self._ensure_ray()
        resources = segment_resources(plan, seg)
        if resources is None:
            results += self._run_tasks(plan, seg, todo, progress)
        else:
            results += self._run_actors(plan, seg, todo, progress, resources)
        return results

    def _run_tasks(self, plan: Plan, seg: int, todo: list[int], progress) -> list[dict]:
        key, box = self._plan_args(plan)
        sink = self._progress_sink()
        window = 2 * self._slots({"num_cpus": 1}) + 2  # bounded in-flight refs; Ray keeps every slot busy
        task = _map_task.options(num_cpus=1, max_retries=self.max_retries, retry_exceptions=False)
        self.segment_modes[seg] = "tasks"
        queue = deque(todo)

        def submit():
            s = queue.popleft()
            return task.remote(key, box, seg, s, sink), s

        pending = dict(submit() for _ in range(min(window, len(queue))))
        return self._drain(pending, seg, progress, refill=lambda: dict([submit()]) if queue else {})

    def _run_actors(self, plan: Plan, seg: int, todo: list[int], progress, resources: dict) -> list[dict]:
        key, box = self._plan_args(plan)
        sink = self._progress_sink()
        size = min(self._slots(resources), len(todo))
        opts = dict(num_cpus=resources["num_cpus"], max_restarts=self.max_retries,
                    max_task_retries=self.max_retries)
        if resources.get("num_gpus"):
            opts["num_gpus"] = resources["num_gpus"]
        actors = [_ShardActor.options(**opts).remote() for _ in range(size)]
        self.segment_modes[seg] = f"actors:{size}"
        get_logger().info("segment %d: actor pool of %d (%s)", seg, size, resources)
        queue = deque(todo)
        owner: dict = {}

        def submit(actor):
            s = queue.popleft()
            ref = actor.run.remote(key, box, seg, s, sink)
            owner[ref] = actor
            return ref, s

        def refill(done_ref):
            return dict([submit(owner.pop(done_ref))]) if queue else {}

        try:
            pending = dict(submit(a) for a in actors if queue)
            return self._drain(pending, seg, progress, refill=refill, pass_ref=True)
        finally:
            for a in actors:  # free the GPUs for the next segment's pool
                ray.kill(a)

    def _drain(self, pending: dict, seg: int, progress, refill, pass_ref: bool = False) -> list[dict]:
        """Wait for tasks, report each finished shard, top the window up, and feed the
        live record count of running shards into the progress line."""
        results = []
        finished_records = shown = 0
        last_poll = 0.0
        while pending:
            refs = list(pending)
            done, _ = ray.wait(refs, num_returns=1, timeout=POLL_S)
            if done:  # collect every other finished task too, without waiting
                done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            newly = []
            for ref in done:
                shard = pending.pop(ref)
                result = ray.get(ref)  # raises the task's own exception type (RayTaskError subclasses it)
                self._sink.finish.remote((seg, shard))
                finished_records += result["in"] - result["quarantined"]
                newly.append(result)
                pending.update(refill(ref) if pass_ref else refill())
            live = finished_records
            if time.monotonic() - last_poll >= POLL_S:
                last_poll = time.monotonic()
                live += ray.get(self._sink.live.remote(seg))
            if live > shown:
                progress.advance(live - shown)
                shown = live
            for result in newly:
                progress.shard_done(result, resumed=False)
            results += newly
        if finished_records > shown:
            progress.advance(finished_records - shown)
        return results

    @staticmethod
    def _track(result: dict, progress) -> dict:
        progress.shard_done(result, resumed=result.get("resumed", False))
        return result

    def reduce(self, plan: Plan, stage_index: int) -> dict:
        # the reduce itself runs here (it reads every shard's artifacts from the shared
        # filesystem and writes state); its ctx.pmap fan-out runs on the cluster
        self._plan = plan
        return run_reduce_task(plan, stage_index, workers=self._workers_hint(), parallel_map=self.parallel_map)

    def _workers_hint(self) -> int:
        if not ray.is_initialized():
            return int(self.cfg.get("num_cpus") or self.cfg["workers"])
        return self._slots({"num_cpus": 1})

    def parallel_map(self, fn, items: list) -> list:
        """fn over items as Ray tasks, results in item order (e.g. connected components
        per bucket partition, SemDeDup per k-means cluster)."""
        items = list(items)
        if not items:
            return []
        import cloudpickle
        self._ensure_ray()
        plugins = list((self._plan.recipe if self._plan else {}).get("plugins") or [])
        fn_ref = ray.put(cloudpickle.dumps(fn))
        task = _pmap_task.options(num_cpus=1, max_retries=self.max_retries, retry_exceptions=False)
        return ray.get([task.remote(plugins, fn_ref, cloudpickle.dumps(x)) for x in items])

    def close(self) -> None:
        if self._sink is not None and ray.is_initialized():
            ray.kill(self._sink)
        self._sink = None
        self._plan_box = self._plan_key = None
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
        self._owns_ray = False
