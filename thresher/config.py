"""Recipe loading and validation.

A recipe is YAML::

    name: demo
    inputs:
      - path: data/*.jsonl        # file, glob or directory
        name: web                 # source name (default: file stem)
        format: auto              # auto|jsonl|json|parquet|text
        unit: line                # plain text: line | paragraph | blank_line | chapter | file
        mapping: {format: alpaca, fields: {instruction: q, output: a}}
    output: {dir: runs/demo, format: jsonl.zst, split_by: tier}
    executor: {type: local, workers: 2, shard_bytes: 64MB}
    stages:
      - text_length_filter: {min_chars: 20}
      - exact_dedup

Errors name the offending key (``stages[1].exact_dedup.bogus``).
"""
from __future__ import annotations

import copy
import os
import re
from typing import Any

import yaml

from .io.units import UNITS
from .pipeline import ConfigError, Stage, get_stage_class

TOP_KEYS = {"name", "description", "inputs", "output", "executor", "stages", "tiers", "plugins"}
INPUT_KEYS = {"path", "name", "format", "unit", "text_unit", "mapping", "encoding", "on_missing_input"}
OUTPUT_KEYS = {"dir", "format", "split_by", "keep_work", "rejected_samples", "work_dir"}
EXECUTOR_KEYS = {"type", "workers", "shard_bytes", "batch_size", "address", "num_cpus", "progress_interval",
                 "max_retries"}
INPUT_FORMATS = {"auto", "jsonl", "json", "parquet", "text"}
OUTPUT_FORMATS = {"jsonl", "jsonl.zst", "parquet"}
EXECUTORS = {"local", "ray"}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]i?B?|B)?\s*$", re.I)


def parse_size(value: Any, key: str) -> int:
    if isinstance(value, int):
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise ConfigError(f"{key}: cannot parse size {value!r} (use e.g. 64MB)")
    unit = (m.group(2) or "B").upper()[0]
    return int(float(m.group(1)) * {"B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[unit])


def _check_keys(section: dict, allowed: set[str], where: str) -> None:
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(section).__name__}")
    for k in section:
        if k not in allowed:
            raise ConfigError(f"{where}.{k}: unknown key; allowed: {', '.join(sorted(allowed))}")


def parse_stage_entry(entry: Any, index: int) -> tuple[str, dict]:
    """``- name`` or ``- name: {params}`` (data-juicer style)."""
    where = f"stages[{index}]"
    if isinstance(entry, str):
        return entry, {}
    if isinstance(entry, dict) and len(entry) == 1:
        (name, params), = entry.items()
        params = params or {}
        if not isinstance(params, dict):
            raise ConfigError(f"{where}.{name}: parameters must be a mapping, got {params!r}")
        return name, dict(params)
    raise ConfigError(f"{where}: expected `- stage_name` or `- stage_name: {{params}}`, got {entry!r}")


def import_plugins(recipe: dict) -> None:
    """``plugins:`` modules (dotted names or .py paths) that register user stages."""
    import importlib
    import importlib.util
    import sys
    for i, mod in enumerate(recipe.get("plugins") or []):
        if str(mod).endswith(".py"):
            name = "thresher_plugin_" + os.path.splitext(os.path.basename(mod))[0]
            if name in sys.modules:
                continue
            spec = importlib.util.spec_from_file_location(name, mod)
            if spec is None or not os.path.exists(mod):
                raise ConfigError(f"plugins[{i}]: no such file {mod!r}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        else:
            try:
                importlib.import_module(mod)
            except ImportError as e:
                raise ConfigError(f"plugins[{i}]: cannot import {mod!r}: {e}") from None


def build_stages(recipe: dict) -> list[Stage]:
    import_plugins(recipe)
    stages = []
    for i, entry in enumerate(recipe.get("stages") or []):
        name, params = parse_stage_entry(entry, i)
        cls = get_stage_class(name)
        try:
            st = cls(**params)
            st.check_recipe(recipe)
        except ConfigError as e:
            raise ConfigError(f"stages[{i}].{e}") from None
        stages.append(st)
    seen: dict[str, int] = {}
    for st in stages:  # a stage used twice keeps separate stats: second one is "name#2"
        seen[st.label] = seen.get(st.label, 0) + 1
        if seen[st.label] > 1:
            st.label = f"{st.label}#{seen[st.label]}"
    return stages


def validate(recipe: dict, base_dir: str = ".") -> dict:
    """Check and normalise a recipe dict; return a new dict with defaults filled in."""
    recipe = copy.deepcopy(recipe)
    _check_keys(recipe, TOP_KEYS, "recipe")
    inputs = recipe.get("inputs")
    if not inputs or not isinstance(inputs, list):
        raise ConfigError("inputs: need a non-empty list of {path: ...}")
    for i, inp in enumerate(inputs):
        if isinstance(inp, str):
            inp = inputs[i] = {"path": inp}
        _check_keys(inp, INPUT_KEYS, f"inputs[{i}]")
        if "path" not in inp:
            raise ConfigError(f"inputs[{i}].path: missing")
        inp["path"] = _resolve(inp["path"], base_dir)
        inp.setdefault("format", "auto")
        # a truncated, corrupt or vanished input: end the run non-zero (default), or only quarantine it
        if inp.setdefault("on_missing_input", "fail") not in ("fail", "quarantine"):
            raise ConfigError(f"inputs[{i}].on_missing_input: must be fail or quarantine")
        if inp["format"] not in INPUT_FORMATS:
            raise ConfigError(f"inputs[{i}].format: {inp['format']!r} not in {sorted(INPUT_FORMATS)}")
        if "unit" in inp:  # `unit:` is the documented spelling, `text_unit:` the older one
            inp["text_unit"] = inp.pop("unit")
        inp.setdefault("text_unit", "line")
        if inp["text_unit"] not in UNITS:
            raise ConfigError(f"inputs[{i}].unit: {inp['text_unit']!r} not one of {', '.join(UNITS)}")
    out = recipe.setdefault("output", {})
    _check_keys(out, OUTPUT_KEYS, "output")
    if "dir" not in out:
        raise ConfigError("output.dir: missing")
    out["dir"] = _resolve(out["dir"], base_dir)
    if out.get("work_dir"):  # local scratch of a run whose output.dir is remote (RunDir)
        out["work_dir"] = _resolve(out["work_dir"], base_dir)
    out.setdefault("format", "jsonl.zst")
    if out["format"] not in OUTPUT_FORMATS:
        raise ConfigError(f"output.format: {out['format']!r} not in {sorted(OUTPUT_FORMATS)}")
    out.setdefault("keep_work", False)
    out.setdefault("rejected_samples", 20)
    ex = recipe.setdefault("executor", {})
    _check_keys(ex, EXECUTOR_KEYS, "executor")
    ex.setdefault("type", "local")
    if ex["type"] not in EXECUTORS:
        raise ConfigError(f"executor.type: {ex['type']!r} not in {sorted(EXECUTORS)}")
    ex.setdefault("workers", min(os.cpu_count() or 1, 8))
    if not isinstance(ex["workers"], int) or ex["workers"] < 1:
        raise ConfigError(f"executor.workers: must be a positive integer, got {ex['workers']!r}")
    ex["shard_bytes"] = parse_size(ex.get("shard_bytes", "64MB"), "executor.shard_bytes")
    ex.setdefault("batch_size", 512)
    ex.setdefault("progress_interval", 10)
    recipe["plugins"] = [_resolve(p, base_dir) if str(p).endswith(".py") else p
                         for p in recipe.get("plugins") or []]
    recipe.setdefault("stages", [])
    if not isinstance(recipe["stages"], list):
        raise ConfigError("stages: expected a list")
    build_stages(recipe)  # instantiating validates names and parameters
    recipe.setdefault("name", os.path.basename(out["dir"].rstrip("/")))
    return recipe


def _resolve(path: str, base_dir: str) -> str:
    path = os.path.expanduser(os.path.expandvars(str(path)))
    if "://" in path or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(base_dir, path))


def load_recipe(path: str, overrides: dict | None = None) -> dict:
    """Load a recipe file (or a shipped recipe name such as ``pretrain-zh``)."""
    path = find_recipe(path)
    with open(path, encoding="utf-8") as f:
        try:
            recipe = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: invalid YAML: {e}") from None
    for dotted, value in (overrides or {}).items():
        _set_dotted(recipe, dotted, value)
    # relative paths in a recipe are relative to the working directory, like a CLI argument
    return validate(recipe, base_dir=os.getcwd())


def find_recipe(name: str) -> str:
    """A recipe file path, or the name of a shipped recipe (``pretrain-zh``, ``sft-zh.yaml``,
    ``configs/default.yaml``) read from the package through importlib.resources."""
    if os.path.exists(name):
        return name
    from thresher.resources import shipped
    base = name[len("configs/"):] if name.startswith("configs/") else name
    cand = shipped(base if base.endswith((".yaml", ".yml")) else f"{base}.yaml")
    if cand is not None and cand.is_file():
        return str(cand)
    raise ConfigError(f"recipe {name!r}: no such file and no shipped recipe of that name")


def _set_dotted(d: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = value
