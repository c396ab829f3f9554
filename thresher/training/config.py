"""Open-Assistant-style training configs: named YAML blocks merged in order.

Every ``*.yaml`` in the config directory is a mapping of *block name -> settings*.
``--configs defaults tiny-llama datasets-demo`` deep-merges those blocks left to
right (dicts merge key by key, lists and scalars replace), then command-line
overrides are applied (``--set lora.r=16`` or ``--lora.r 16``; values are parsed as
YAML so ``true``/``1e-4``/``[a, b]`` get their types).  The result is a plain dict:
easy to dump next to the checkpoint so a run can be reproduced exactly.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

ENV_CONFIG_DIR = "THRESHER_TRAIN_CONFIG_DIR"


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def default_config_dir() -> Path:
    """configs/train: $THRESHER_TRAIN_CONFIG_DIR, then ./configs/train, then the source checkout."""
    env = os.environ.get(ENV_CONFIG_DIR)
    if env:
        return Path(env)
    cwd = Path.cwd() / "configs" / "train"
    if cwd.is_dir():
        return cwd
    return repo_root() / "configs" / "train"


def load_blocks(config_dir: str | os.PathLike | None = None) -> dict[str, dict]:
    d = Path(config_dir) if config_dir else default_config_dir()
    if not d.is_dir():
        raise FileNotFoundError(f"training config directory {d} does not exist (set --config-dir or ${ENV_CONFIG_DIR})")
    blocks: dict[str, dict] = {}
    for f in sorted(d.glob("*.yaml")):
        data = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        for name, block in data.items():
            if name in blocks:
                raise ValueError(f"config block {name!r} defined twice (again in {f.name})")
            if not isinstance(block, dict):
                raise ValueError(f"config block {name!r} in {f.name} must be a mapping")
            blocks[name] = block
    return blocks


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def set_dotted(cfg: dict, key: str, value: Any) -> None:
    parts = key.replace("-", "_").split(".")
    node = cfg
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[parts[-1]] = value


def get_dotted(cfg: dict, key: str, default: Any = None) -> Any:
    node: Any = cfg
    for p in key.split("."):
        if not isinstance(node, dict) or p not in node:
            return default
        node = node[p]
    return node


def parse_value(text: str) -> Any:
    # YAML 1.1 reads "2e-5" as a string; numbers first, then YAML for the rest
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_overrides(tokens: list[str]) -> list[tuple[str, Any]]:
    """``["--set", "a.b=1", "--lr", "2e-5", "--flag"]`` -> [("a.b", 1), ("lr", 2e-5), ("flag", True)]."""
    out: list[tuple[str, Any]] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "--set":
            if i + 1 >= len(tokens) or "=" not in tokens[i + 1]:
                raise ValueError("--set needs key=value")
            k, v = tokens[i + 1].split("=", 1)
            out.append((k, parse_value(v)))
            i += 2
        elif tok.startswith("--"):
            key = tok[2:]
            if "=" in key:
                k, v = key.split("=", 1)
                out.append((k, parse_value(v)))
                i += 1
            elif i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
                out.append((key, parse_value(tokens[i + 1])))
                i += 2
            else:
                out.append((key, True))
                i += 1
        else:
            raise ValueError(f"unexpected argument {tok!r} (overrides look like --key value or --set key=value)")
    return out


def build_config(names: list[str], overrides: list[tuple[str, Any]] = (), config_dir=None) -> dict:
    blocks = load_blocks(config_dir)
    cfg: dict = {}
    names = list(names) or ["defaults"]
    if names[0] != "defaults" and "defaults" in blocks:
        names = ["defaults"] + names  # defaults always underlie the overlays
    for n in names:
        if n not in blocks:
            raise KeyError(f"unknown config block {n!r}; known: {sorted(blocks)}")
        cfg = deep_merge(cfg, blocks[n])
    for k, v in overrides:
        set_dotted(cfg, k, v)
    cfg["_configs"] = names
    return normalize_deepspeed(cfg)


def normalize_deepspeed(cfg: dict) -> dict:
    """Open-Assistant's bare ``--deepspeed`` flag (``deepspeed: true``) selects the merged
    blocks' ``deepspeed_config`` (each model block names its default ZeRO config); a path
    or an inline dict is used as given, and false/null means the plain torch loop."""
    ds = cfg.get("deepspeed")
    if ds is True:
        if not cfg.get("deepspeed_config"):
            raise ValueError("--deepspeed given without a path and no deepspeed_config in the config blocks")
        cfg["deepspeed"] = cfg["deepspeed_config"]
    elif ds is False:
        cfg["deepspeed"] = None
    return cfg
