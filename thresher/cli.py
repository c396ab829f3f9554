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

from .io.atomic import is_temp

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
    from .executor.runner import InputIncomplete, RunLocked, run_recipe
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
    token = None
    if args.pidfile:
        token = _become_group_leader(args.pidfile, getattr(args, "argv", None))
    try:
        run_recipe(recipe, restart=args.restart, accept_changed=args.accept_changed,
                   pidfile=args.pidfile, run_token=token)
    except RunLocked as e:
        print(f"refused: {e}", file=sys.stderr)
        return 3
    except (ConfigError, FileNotFoundError) as e:  # a bad recipe, an input that matches no file
        print(f"error: {e}", file=sys.stderr)
        return 2
    except InputIncomplete as e:
        print(f"error: {e}", file=sys.stderr)
        return 4
    return 0


def _become_group_leader(pidfile: str, argv: list[str] | None) -> str:
    """Own process group (so a stop signals exactly this run); returns the run token.

    The token must be in this process's environment *at exec time* (``/proc/<pid>/
    environ`` is what a stop checks), so without one the process re-executes itself
    with a fresh token.  The pid file is written by run_recipe once it holds the lock.
    """
    from .executor.pidfile import TOKEN_ENV, remove_if_same
    token = os.environ.get(TOKEN_ENV)
    if not token:
        env = {**os.environ, TOKEN_ENV: os.urandom(8).hex()}
        os.execve(sys.executable, [sys.executable, "-m", "thresher.cli", *(argv or sys.argv[1:])], env)
    try:
        os.setsid()
    except PermissionError:  # already a session leader
        pass
    leader = os.getpid()

    def on_term(signum, _frame):
        if os.getpid() != leader:  # a pool worker inherited this handler: exit quietly
            os._exit(128 + signum)
        from .executor.pidfile import read_pidfile
        from .log import get_logger
        get_logger().warning("stopped by signal %d; finished shards are checkpointed, run again to resume", signum)
        info = read_pidfile(pidfile)
        if not isinstance(info, str) and info is not None and info.pid == leader and info.token == token:
            remove_if_same(pidfile, info)  # only our own file: a refused start leaves the live run's alone
        os._exit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)
    return token


def cmd_run_dir(args) -> int:
    from .config import load_recipe
    print(load_recipe(args.recipe)["output"]["dir"])
    return 0


def cmd_status(args) -> int:
    from .rundir import RunDir
    run_dir = args.run_dir
    rd = RunDir(run_dir)
    plan_path = rd.plan_file
    info, stale = _run_process(run_dir)
    if not os.path.exists(plan_path):
        print(f"{run_dir}: " + (f"running (pgid {info.pgid}), planning" if info else "no run here"))
        if stale:
            print(f"  stale run.pid: {stale}")
        return 0 if info else 1
    with open(plan_path, "rb") as f:
        plan = orjson.loads(f.read())
    n = len(plan["shards"])
    done = os.path.exists(rd.manifest)
    state = "running (pgid %d)" % info.pgid if info else "finished" if done else "stopped"
    print(f"run {plan['recipe']['name']} in {run_dir}: {state}")
    if stale:
        print(f"  stale run.pid: {stale}")
    for entry in sorted(os.listdir(rd.state)):
        if os.path.isdir(os.path.join(rd.state, entry)):
            print(f"  {entry}: {len(rd.markers(entry))}/{n} shards done")
        elif entry.startswith("global-") and not is_temp(entry):
            print(f"  {entry[:-5]}: reduced")
    if done and os.path.exists(rd.summary):
        with open(rd.summary, encoding="utf-8") as f:
            print(f.read())
    return 0


def _run_process(run_dir: str):
    """(PidInfo of the live run or None, why run.pid is stale or None)."""
    from .executor.pidfile import check, read_pidfile
    from .rundir import RunDir
    info = read_pidfile(RunDir(run_dir).pidfile)
    if info is None:
        return None, None
    if isinstance(info, str):
        return None, info
    why = check(info)
    return (None, why) if why else (info, None)


def cmd_stop(args) -> int:
    """Stop the run recorded in run.pid, only if it verifiably is that run (shared by
    stopall.sh).  Exit 0: stopped; 1: nothing running (a stale file is reported)."""
    from .executor.pidfile import remove_if_same, stop
    info, stale = _run_process(args.run_dir)
    if info is None:
        print(f"{args.run_dir}: not running" + (f" (stale run.pid left alone: {stale})" if stale else ""))
        return 1
    print(f"stopping {args.run_dir} (process group {info.pgid})", flush=True)
    outcome = stop(info, args.grace)
    if outcome == "killed":
        print(f"  still alive after {args.grace:g}s: SIGKILL to process group {info.pgid}")
    from .rundir import RunDir
    remove_if_same(RunDir(args.run_dir).pidfile, info)
    print(f"stopped process group {info.pgid} ({outcome})")
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
    r.add_argument("--accept-changed", action="store_true",
                   help="resume although inputs or code changed since the run started")
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
    args.argv = argv
    return int(args.fn(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
