"""``thresher train sft|dpo|rounds|extend-vocab|preview``.

    thresher train sft --configs defaults tiny-llama datasets-demo --set lora.r=16 --output_dir out/x
    thresher train extend-vocab --base /models/llama-7b --corpus zh.txt --out tok-zh
    thresher train init-tiny --out .cache/tiny-llama --corpus runs/default/kept   # CPU demo model
    thresher train preview --configs defaults tiny-llama datasets-demo --n 3 [--json] [--dpo]

Everything after the named config blocks is an override (``--key value`` or
``--set key=value``, dotted keys reach nested settings).  ``--local_rank`` (passed
by the ``deepspeed`` launcher) is accepted and ignored: the rank comes from the
environment the launcher sets.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from thresher.training.config import TrainConfigError, build_config, parse_overrides

COMMANDS = ("sft", "dpo", "rounds", "extend-vocab", "show-config", "init-tiny", "preview")


def _strip_local_rank(tokens: list[str]) -> list[str]:
    out, skip = [], False
    for i, t in enumerate(tokens):
        if skip:
            skip = False
            continue
        if t.startswith("--local_rank") or t.startswith("--local-rank"):
            if "=" not in t:
                skip = True
            continue
        out.append(t)
    return out


def _train_parser(cmd: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"thresher train {cmd}", add_help=True,
                                epilog="further --key value / --set key=value pairs override config keys")
    p.add_argument("--configs", nargs="+", default=["defaults"], help="config blocks merged in order")
    p.add_argument("--config-dir", default=None, help="directory of *.yaml config blocks (default configs/train)")
    return p


def _extend_vocab_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="thresher train extend-vocab")
    p.add_argument("--base", required=True, help="local path of the base tokenizer")
    p.add_argument("--out", required=True, help="directory for the merged tokenizer")
    p.add_argument("--corpus", nargs="*", default=None, help=".txt files or any thresher-readable data")
    p.add_argument("--sp-model", default=None, help="use this SentencePiece model instead of training one")
    p.add_argument("--vocab-size", type=int, default=8000)
    p.add_argument("--model-type", default="bpe", choices=["bpe", "unigram"])
    p.add_argument("--max-sentences", type=int, default=200_000)
    p.add_argument("--all-scripts", action="store_true", help="also add pieces without CJK characters")
    return p


def main(argv: list[str] | None = None) -> int:
    # the deepspeed launcher puts --local_rank=N *before* the subcommand
    argv = _strip_local_rank(list(sys.argv[1:] if argv is None else argv))
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(f"usage: thresher train {{{','.join(COMMANDS)}}} [options]\n\n{__doc__}", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "extend-vocab":
        a = _extend_vocab_parser().parse_args(rest)
        from thresher.training.vocab import extend_vocab
        rep = extend_vocab(a.base, a.out, a.corpus, a.sp_model, a.vocab_size, a.model_type, a.max_sentences,
                           only_cjk=not a.all_scripts)
        print(json.dumps(rep, ensure_ascii=False, indent=1))
        return 0
    if cmd == "init-tiny":
        p = argparse.ArgumentParser(prog="thresher train init-tiny")
        p.add_argument("--out", default=".cache/tiny-llama")
        p.add_argument("--corpus", default=None, help="data to train the tokenizer on (a tier, file or dir)")
        p.add_argument("--vocab-size", type=int, default=2000)
        a = p.parse_args(rest)
        from thresher.training.tiny import build_tiny
        print(json.dumps(build_tiny(a.out, a.corpus, a.vocab_size)))
        return 0
    p = _train_parser(cmd)
    if cmd == "preview":
        p.add_argument("--n", type=int, default=5, help="how many samples")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.add_argument("--dpo", action="store_true", help="preview preference pairs (prompt + chosen)")
    args, extra = p.parse_known_args(rest)
    try:
        cfg = build_config(args.configs, parse_overrides(extra), args.config_dir)
    except (TrainConfigError, KeyError, ValueError) as e:
        print(f"thresher train {cmd}: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    if cmd == "preview":
        from thresher.training.preview import format_text, preview
        rep = preview(cfg, args.n, "dpo" if args.dpo else "sft")
        print(json.dumps(rep, ensure_ascii=False) if args.json else format_text(rep))
        return 0
    if cmd == "show-config":
        import yaml
        print(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False))
        return 0
    from thresher.training import distributed as D
    try:
        if cmd == "rounds":
            from thresher.training.rounds import run_rounds
            res = run_rounds(cfg)
        else:
            from thresher.training.runs import run
            res = run(cfg, cmd)
        if D.is_main():
            print(json.dumps({k: v for k, v in res.items() if k != "history"}, ensure_ascii=False, default=str)[:4000])
    finally:
        D.teardown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
