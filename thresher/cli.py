"""`thresher` command line: run / status / stop / inspect / stats / demo, plus the
commands other subpackages contribute (train, eval-dedup, train-quality, report)."""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

import orjson
import yaml

# subcommands living in optional subpackages: imported only when used, so a
# cleaning-only install never imports torch
EXTERNAL_COMMANDS = {
    "train": ("thresher.training.cli", "main", "SFT / DPO / rounds / extend-vocab training"),
    "eval-dedup": ("thresher.dedup.evaluate", "main", "precision/recall/F1 of dedup methods on labelled pairs"),
    "train-quality": ("thresher.scoring.cli", "train_quality_main", "train the fastText quality classifier"),
    "report": ("thresher.scoring.report", "main", "plots + HTML curation report of a run"),
    "semdedup-sweep": ("thresher.dedup.cli", "sweep_main", "SemDeDup eps sweep of a run"),
    "audit": ("thresher.audit", "main", "sample decisions to mark by hand; --score: precision per reason"),
}


def _parse_sets(pairs: list[str]) -> dict:
    out = {}
    for p in pairs or []:
        if "=" not in p:
            raise SystemExit(f"--set expects key=value, got {p!r}")
        k, v = p.split("=", 1)
        out[k] = yaml.safe_load(v)
    return out


def cmd_run(args) -> int:
    from .config import load_recipe
    from .executor.runner import RunLocked, run_recipe
    from .pipeline import ConfigError
    overrides = _parse_sets(args.set)
    if args.workers:
        overrides["executor.workers"] = args.workers
    if args.executor:
        overrides["executor.type"] = args.executor
    try:
        recipe = load_recipe(args.recipe, overrides)
    except (ConfigError, FileNotFoundError) as e:
        print(f"recipe error: {e}", file=sys.stderr)
        return 2
    if args.pidfile:
        _become_group_leader(args.pidfile)
    try:
        run_recipe(recipe, restart=args.restart)
    except RunLocked as e:
        print(f"refused: {e}", file=sys.stderr)
        return 3
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if args.pidfile and os.path.exists(args.pidfile):
            os.remove(args.pidfile)
    return 0


def _become_group_leader(pidfile: str) -> None:
    """Own process group (so stopall can signal exactly this run) + recorded pgid."""
    try:
        os.setsid()
    except PermissionError:  # already a session leader
        pass
    from .io.writers import atomic_write_bytes
    atomic_write_bytes(pidfile, f"{os.getpgid(0)}\n".encode())

    leader = os.getpid()

    def on_term(signum, _frame):
        if os.getpid() != leader:  # a pool worker inherited this handler: exit quietly
            os._exit(128 + signum)
        from .log import get_logger
        get_logger().warning("stopped by signal %d; finished shards are checkpointed, run again to resume", signum)
        if os.path.exists(pidfile):
            os.remove(pidfile)
        os._exit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)


def cmd_run_dir(args) -> int:
    from .config import load_recipe
    print(load_recipe(args.recipe)["output"]["dir"])
    return 0


def cmd_status(args) -> int:
    run_dir = args.run_dir
    plan_path = os.path.join(run_dir, "state", "plan.json")
    if not os.path.exists(plan_path):
        print(f"{run_dir}: no run here")
        return 1
    with open(plan_path, "rb") as f:
        plan = orjson.loads(f.read())
    n = len(plan["shards"])
    pid = _read_pid(run_dir)
    alive = pid is not None and _group_alive(pid)
    done = os.path.exists(os.path.join(run_dir, "manifest.json"))
    print(f"run {plan['recipe']['name']} in {run_dir}: "
          f"{'finished' if done and not alive else 'running (pgid %d)' % pid if alive else 'stopped'}")
    state = os.path.join(run_dir, "state")
    for entry in sorted(os.listdir(state)):
        p = os.path.join(state, entry)
        if os.path.isdir(p):
            print(f"  {entry}: {len(os.listdir(p))}/{n} shards done")
        elif entry.startswith("global-"):
            print(f"  {entry[:-5]}: reduced")
    if done:
        with open(os.path.join(run_dir, "summary.txt"), encoding="utf-8") as f:
            print(f.read())
    return 0


def _read_pid(run_dir: str) -> int | None:
    try:
        with open(os.path.join(run_dir, "run.pid")) as f:
            return int(f.read().strip())
    except (FileNotFoundError, ValueError):
        return None


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def cmd_stop(args) -> int:
    import time
    pgid = _read_pid(args.run_dir)
    if pgid is None or not _group_alive(pgid):
        print(f"{args.run_dir}: not running")
        return 0
    os.killpg(pgid, signal.SIGTERM)
    deadline = time.time() + args.grace
    while time.time() < deadline and _group_alive(pgid):
        time.sleep(0.2)
    if _group_alive(pgid):
        os.killpg(pgid, signal.SIGKILL)
    print(f"stopped process group {pgid}")
    return 0


def cmd_inspect(args) -> int:
    from .inspect import find_by_id, find_by_reason, find_dup_cluster
    if args.id:
        hits = find_by_id(args.run_dir, args.id)
    elif args.reason:
        hits = find_by_reason(args.run_dir, args.reason, args.limit)
    elif args.dup_cluster:
        hits = find_dup_cluster(args.run_dir, args.dup_cluster)
    else:
        print("give --id, --reason or --dup-cluster", file=sys.stderr)
        return 2
    for sink, rec in hits:
        print(f"== {sink}")
        print(orjson.dumps(rec, option=orjson.OPT_INDENT_2).decode())
    if not hits:
        print("no match", file=sys.stderr)
        return 1
    return 0


def cmd_stats(args) -> int:
    from .inspect import output_stats
    print(output_stats(args.path))
    return 0


def cmd_demo(args) -> int:
    from .demo import write_demo_corpus
    paths = write_demo_corpus(args.out, seed=args.seed, n_docs=args.docs)
    for p in paths:
        print(p)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="thresher", description="Chinese-first LLM data curation")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a recipe (resumes an interrupted run)")
    r.add_argument("recipe", help="recipe YAML path or shipped name (default, pretrain-zh, sft-zh)")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe key (dotted)")
    r.add_argument("--workers", type=int)
    r.add_argument("--executor", choices=["local", "ray"])
    r.add_argument("--restart", action="store_true", help="discard an earlier run in output.dir")
    r.add_argument("--pidfile", help="become a process-group leader and record the pgid here")
    r.set_defaults(fn=cmd_run)
    rd = sub.add_parser("run-dir", help="print a recipe's output.dir")
    rd.add_argument("recipe")
    rd.set_defaults(fn=cmd_run_dir)
    s = sub.add_parser("status", help="progress of a run")
    s.add_argument("run_dir")
    s.set_defaults(fn=cmd_status)
    st = sub.add_parser("stop", help="stop a run started with --pidfile (SIGTERM, grace, SIGKILL)")
    st.add_argument("run_dir")
    st.add_argument("--grace", type=float, default=20.0)
    st.set_defaults(fn=cmd_stop)
    i = sub.add_parser("inspect", help="find records by id, rejection reason or dedup cluster")
    i.add_argument("run_dir")
    i.add_argument("--id")
    i.add_argument("--reason", help="reason code, or stage:reason")
    i.add_argument("--dup-cluster", metavar="ID")
    i.add_argument("--limit", type=int, default=5)
    i.set_defaults(fn=cmd_inspect)
    sa = sub.add_parser("stats", help="statistics of an output folder or manifest")
    sa.add_argument("path")
    sa.set_defaults(fn=cmd_stats)
    d = sub.add_parser("demo", help="write the built-in demo corpus")
    d.add_argument("--out", default="data/demo")
    d.add_argument("--seed", type=int, default=7)
    d.add_argument("--docs", type=int, default=3000)
    d.set_defaults(fn=cmd_demo)
    for name, (_, _, help_text) in EXTERNAL_COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in EXTERNAL_COMMANDS:
        module, func, _ = EXTERNAL_COMMANDS[argv[0]]
        try:
            fn = getattr(importlib.import_module(module), func)
        except (ImportError, AttributeError) as e:
            print(f"`thresher {argv[0]}` is unavailable: {e} (install the matching extra, e.g. "
                  f"pip install 'thresher[all]')", file=sys.stderr)
            return 2
        return int(fn(argv[1:]) or 0)
    args = build_parser().parse_args(argv)
    return int(args.fn(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
