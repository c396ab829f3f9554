"""Open-Assistant-style training configs: named YAML blocks merged in order.

Every ``*.yaml`` in the config directory is a mapping of *block name -> settings*.
``--configs defaults tiny-llama datasets-demo`` deep-merges those blocks left to
right (dicts merge key by key, lists and scalars replace), then command-line
overrides are applied (``--set lora.r=16`` or ``--lora.r 16``; values are parsed as
YAML so ``true``/``1e-4``/``[a, b]`` get their types).  The result is a plain dict:
easy to dump next to the checkpoint so a run can be reproduced exactly.

The schema is the dataclasses below (:class:`TrainConfig` and its sections): they are
the single source of defaults (``configs/train/config.yaml``'s ``defaults:`` block is
checked against them by tests/training/test_config_schema.py), and every block, every
command-line override and the merged result are validated against them: an unknown
key at any nesting level is an error naming it (with a did-you-mean), and so are a
value outside its choices or range, and a curriculum/rounds key naming no score.
"""
from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from thresher import meta as M
from thresher.pipeline import ConfigError, did_you_mean


class TrainConfigError(ConfigError):
    """A training-config problem; the message names the offending key."""


def _f(default: Any = None, types: tuple = (), choices=None, lo=None, hi=None, lo_open=False, hi_open=False,
       nullable=False, factory=None):
    md = {"types": types, "choices": choices, "lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open,
          "nullable": nullable}
    if factory is not None:
        return field(default_factory=factory, metadata=md)
    return field(default=default, metadata=md)


def _templates():
    from thresher.training.templates import TEMPLATES
    return sorted(TEMPLATES)


def _mask_modes():
    from thresher.training.encode import MASK_MODES
    return list(MASK_MODES)


INT, FLOAT, BOOL, STR, LIST, DICT = (int,), (int, float), (bool,), (str,), (list,), (dict,)
DTYPE_NAMES = ["fp32", "float32", "bf16", "bfloat16", "fp16", "float16"]


@dataclass
class LoraConfig:
    r: int = _f(8, INT, lo=1)
    alpha: int = _f(16, INT, lo=1)
    dropout: float = _f(0.05, FLOAT, lo=0.0, hi=1.0, hi_open=True)
    target_modules: Any = _f("all-linear", (str, list))
    train_embeddings: bool = _f(False, BOOL)
    modules_to_save: Any = _f(None, LIST, nullable=True)


@dataclass
class CurriculumConfig:
    enabled: bool = _f(False, BOOL)
    key: str = _f(M.DIFFICULTY_PATH, STR)       # a score path; checked against thresher.meta.SCORE_KEYS
    phases: int = _f(3, INT, lo=1)
    descending: bool = _f(False, BOOL)


@dataclass
class DpoConfig:
    beta: float = _f(0.1, FLOAT, lo=0.0, lo_open=True)
    loss_type: str = _f("sigmoid", STR, choices=["sigmoid", "ipo", "hinge"])
    label_smoothing: float = _f(0.0, FLOAT, lo=0.0, hi=0.5)
    reference: str = _f("precompute", STR, choices=["precompute", "model"])
    ref_model: Any = _f(None, STR, nullable=True)


@dataclass
class RoundsConfig:
    n: int = _f(2, INT, lo=1)
    sft_datasets: Any = _f(None, LIST, nullable=True)    # dataset specs, checked like `datasets`
    dpo_datasets: Any = _f(None, LIST, nullable=True)
    difficulty_key: Any = _f(None, STR, nullable=True)   # a score path, or null: seeded shuffle
    sft: dict = _f(types=DICT, factory=dict)             # partial configs merged per stage, checked too
    dpo: dict = _f(types=DICT, factory=dict)


@dataclass
class EvalConfig:
    max_new_tokens: int = _f(128, INT, lo=1)
    generation_prompts: list = _f(types=LIST, factory=lambda: ["请用一句话介绍一下你自己。",
                                                                "What is the capital of France?"])


@dataclass
class TrainConfig:
    seed: int = _f(42, INT)
    output_dir: str = _f("output/train", STR)
    model_name: Any = _f(None, STR, nullable=True)
    tokenizer_path: Any = _f(None, STR, nullable=True)
    template: str = _f("open-assistant", STR, choices=_templates)
    add_template_tokens: bool = _f(True, BOOL)
    add_bos: bool = _f(False, BOOL)
    pad_token: Any = _f(None, STR, nullable=True)
    pad_vocab_to_multiple_of: Any = _f(None, INT, lo=1, nullable=True)
    mask_mode: str = _f("all_assistant", STR, choices=_mask_modes)
    max_length: int = _f(2048, INT, lo=1)
    max_prompt_length: Any = _f(None, INT, lo=1, nullable=True)
    tuning: str = _f("full", STR, choices=["full", "lora", "qlora"])
    lora: LoraConfig = field(default_factory=LoraConfig)
    dtype: str = _f("fp32", STR, choices=DTYPE_NAMES)
    bf16: bool = _f(False, BOOL)
    fp16: bool = _f(False, BOOL)
    attn_implementation: Any = _f("sdpa", STR, choices=["eager", "sdpa", "flash_attention_2"], nullable=True)
    gradient_checkpointing: bool = _f(False, BOOL)
    packing: bool = _f(False, BOOL)
    packing_attention: str = _f("mask4d", STR, choices=["mask4d", "position_ids"])
    group_by_length: bool = _f(True, BOOL)
    per_device_train_batch_size: int = _f(4, INT, lo=1)
    per_device_eval_batch_size: int = _f(8, INT, lo=1)
    gradient_accumulation_steps: int = _f(1, INT, lo=1)
    learning_rate: float = _f(1.0e-5, FLOAT, lo=0.0, hi=1.0, lo_open=True)
    weight_decay: float = _f(0.0, FLOAT, lo=0.0)
    adam_beta1: float = _f(0.9, FLOAT, lo=0.0, hi=1.0, hi_open=True)
    adam_beta2: float = _f(0.95, FLOAT, lo=0.0, hi=1.0, hi_open=True)
    adam_epsilon: float = _f(1.0e-8, FLOAT, lo=0.0, lo_open=True)
    max_grad_norm: float = _f(1.0, FLOAT, lo=0.0)
    lr_scheduler: str = _f("cosine", STR, choices=["cosine", "linear", "constant"])
    warmup_ratio: float = _f(0.03, FLOAT, lo=0.0, hi=1.0)
    warmup_steps: int = _f(0, INT, lo=0)
    num_train_epochs: int = _f(1, INT, lo=1)
    max_steps: Any = _f(None, INT, lo=0, nullable=True)         # 0 or null: epochs decide
    logging_steps: int = _f(10, INT, lo=1)
    eval_steps: int = _f(0, INT, lo=0)
    save_steps: int = _f(0, INT, lo=0)
    save_total_limit: Any = _f(2, INT, lo=0, nullable=True)    # 0 or null: keep every checkpoint
    save_final_checkpoint: bool = _f(True, BOOL)
    resume: Any = _f("auto", (str, bool))               # auto | false | <checkpoint tag>
    deepspeed: Any = _f(None, (str, dict, bool), nullable=True)
    deepspeed_config: Any = _f("configs/deepspeed/zero2.json", STR, nullable=True)
    deepspeed_offload: bool = _f(False, BOOL)
    zero3_init: bool = _f(True, BOOL)
    dist_backend: Any = _f(None, STR, choices=["nccl", "gloo", "mpi", "ccl", "hccl"], nullable=True)
    trust_remote_code: bool = _f(False, BOOL)
    log_level: str = _f("INFO", STR, choices=["DEBUG", "INFO", "WARNING", "ERROR", "debug", "info", "warning",
                                                 "error"])
    datasets: Any = _f(None, LIST, nullable=True)        # dataset specs (thresher.training.data)
    datasets_key: str = _f("datasets", STR)
    dataset_defaults: dict = _f(types=DICT, factory=lambda: {"val_split": 0.05, "max_val_set": 500})
    dataset_paths: dict = _f(types=DICT, factory=dict)   # name -> manifest.json | file | dir
    data_dir: Any = _f(None, STR, nullable=True)
    score_keys: list = _f(types=LIST, factory=list)      # extra score keys (a scorer's custom score_name)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    dpo: DpoConfig = field(default_factory=DpoConfig)
    rounds: RoundsConfig = field(default_factory=RoundsConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def default_config() -> dict:
    """The defaults as a plain dict (what every merged config starts from)."""
    return dataclasses.asdict(TrainConfig())


def _fields(cls) -> dict:
    return {f.name: f for f in dataclasses.fields(cls)}


def _fmt_types(types: tuple) -> str:
    return " or ".join(t.__name__ for t in types)


def _check_value(path: str, f, v: Any) -> None:
    md = f.metadata
    if v is None:
        if md.get("nullable") or not md.get("types"):
            return
        raise TrainConfigError(f"{path}: null is not allowed (expected {_fmt_types(md['types'])})")
    types = md.get("types") or ()
    if types:
        ok = isinstance(v, types) and not (isinstance(v, bool) and bool not in types)
        if not ok:
            raise TrainConfigError(f"{path}: {v!r} is a {type(v).__name__}, expected {_fmt_types(types)}")
    choices = md.get("choices")
    if callable(choices):
        choices = choices()
    if choices is not None and isinstance(v, str) and v not in choices:
        raise TrainConfigError(f"{path}: {v!r} is not one of {list(choices)}{did_you_mean(v, choices)}")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        lo, hi = md.get("lo"), md.get("hi")
        if lo is not None and (v < lo or (md.get("lo_open") and v == lo)):
            raise TrainConfigError(f"{path}: {v!r} out of range (must be {'>' if md.get('lo_open') else '>='} {lo})")
        if hi is not None and (v > hi or (md.get("hi_open") and v == hi)):
            raise TrainConfigError(f"{path}: {v!r} out of range (must be {'<' if md.get('hi_open') else '<='} {hi})")


def _check_section(cls, d: Any, path: str, partial: bool, extra_scores: list) -> None:
    if not isinstance(d, dict):
        raise TrainConfigError(f"{path or 'config'}: expected a mapping, got {d!r}")
    fs = _fields(cls)
    for k, v in d.items():
        kp = f"{path}.{k}" if path else str(k)
        if path == "" and str(k).startswith("_"):
            continue  # bookkeeping such as _configs
        if k not in fs:
            raise TrainConfigError(f"unknown training config key {kp!r}{did_you_mean(k, fs)}; "
                                   f"known{' under ' + repr(path) if path else ''}: {sorted(fs)}")
        f = fs[k]
        if path == "" and k in _SECTIONS:
            if v is None:
                raise TrainConfigError(f"{kp}: expected a mapping, got null")
            _check_section(_SECTIONS[k], v, kp, partial, extra_scores)
            continue
        _check_value(kp, f, v)
    if path == "":
        _check_top(d, partial, extra_scores)
    elif path.endswith("rounds"):
        for stage in ("sft", "dpo"):
            if isinstance(d.get(stage), dict):
                _check_overlay(d[stage], f"{path}.{stage}", extra_scores)
        for lk in ("sft_datasets", "dpo_datasets"):
            if d.get(lk) is not None:
                check_dataset_list(d[lk], f"{path}.{lk}")
        if d.get("difficulty_key") is not None:
            _score_path(d["difficulty_key"], f"{path}.difficulty_key", extra_scores)
    elif path.endswith("curriculum"):
        if "key" in d:
            _score_path(d["key"], f"{path}.key", extra_scores)


def _check_overlay(d: dict, path: str, extra_scores: list) -> None:
    """A partial config merged onto the whole one (rounds.sft / rounds.dpo)."""
    try:
        _check_section(TrainConfig, d, "", True, extra_scores)
    except TrainConfigError as e:
        raise TrainConfigError(f"{path}: {e}") from None


def _score_path(v: Any, path: str, extra_scores: list) -> None:
    try:
        M.check_score_path(v, extra_scores, what=path)
    except M.MetaKeyError as e:
        raise TrainConfigError(str(e)) from None


def _check_top(d: dict, partial: bool, extra_scores: list) -> None:
    if d.get("datasets") is not None:
        check_dataset_list(d["datasets"], "datasets")
    dd = d.get("dataset_defaults")
    if isinstance(dd, dict):
        _check_spec_opts(dd, "dataset_defaults")
    if d.get("fp16") and d.get("bf16"):
        raise TrainConfigError("bf16 and fp16 are both true; choose one")
    _check_deepspeed(d.get("deepspeed"), "deepspeed")


def _check_deepspeed(ds: Any, path: str) -> None:
    if isinstance(ds, str) and ds.endswith(".json") and os.path.exists(ds):
        import json
        try:
            with open(ds, encoding="utf-8") as fh:
                ds = json.load(fh)
        except ValueError as e:
            raise TrainConfigError(f"{path}: {ds!r} is not valid JSON: {e}") from None
    if isinstance(ds, dict):
        stage = (ds.get("zero_optimization") or {}).get("stage")
        if stage is not None and stage not in (0, 1, 2, 3):
            raise TrainConfigError(f"{path}.zero_optimization.stage: {stage!r} is not one of [0, 1, 2, 3]")


def _spec_fields() -> dict:
    from thresher.training.data import DatasetSpec
    return {k: v for k, v in _fields(DatasetSpec).items() if k != "name"}


_SPEC_CHECKS = {"val_split": (FLOAT, 0.0, 1.0), "max_val_set": (INT, 0, None), "max_train_set": (INT, 0, None),
                "fraction": (FLOAT, 0.0, 1.0), "input_file_path": (STR, None, None), "lang": ((str, list), None, None),
                "mapping": (DICT, None, None)}


def _check_spec_opts(opts: dict, path: str) -> None:
    allowed = _spec_fields()
    for k, v in opts.items():
        if k not in allowed:
            raise TrainConfigError(f"{path}: unknown dataset option {k!r}{did_you_mean(k, allowed)}; "
                                   f"allowed {sorted(allowed)}")
        if v is None:
            continue
        types, lo, hi = _SPEC_CHECKS.get(k, ((object,), None, None))
        if not isinstance(v, types) or (isinstance(v, bool) and bool not in types):
            raise TrainConfigError(f"{path}.{k}: {v!r} is a {type(v).__name__}, expected {_fmt_types(types)}")
        if lo is not None and v < lo or hi is not None and v > hi:
            raise TrainConfigError(f"{path}.{k}: {v!r} out of range [{lo}, {hi if hi is not None else 'inf'}]")


def check_dataset_list(items: Any, path: str = "datasets") -> None:
    """Each item is a name or ``{name: {options}}`` with known options of valid types."""
    if not isinstance(items, list):
        raise TrainConfigError(f"{path}: expected a list of dataset names or {{name: {{options}}}}, got {items!r}")
    for i, item in enumerate(items):
        if isinstance(item, str):
            continue
        if not (isinstance(item, dict) and len(item) == 1):
            raise TrainConfigError(f"{path}[{i}]: a dataset entry is a name or {{name: {{options}}}}, got {item!r}")
        name, opts = next(iter(item.items()))
        if opts is None:
            continue
        if not isinstance(opts, dict):
            raise TrainConfigError(f"{path}[{i}] ({name}): options must be a mapping, got {opts!r}")
        _check_spec_opts(opts, f"{path}.{name}")


_SECTIONS = {"lora": LoraConfig, "curriculum": CurriculumConfig, "dpo": DpoConfig, "rounds": RoundsConfig,
             "eval": EvalConfig}


def validate_config(cfg: dict, partial: bool = False, where: str = "") -> dict:
    """Check ``cfg`` against :class:`TrainConfig`; raises :class:`TrainConfigError` naming the key.

    ``partial``: a block or overlay (keys may be missing).  Returns ``cfg`` unchanged."""
    extra = list(cfg.get("score_keys") or []) if isinstance(cfg, dict) else []
    try:
        _check_section(TrainConfig, cfg, "", partial, extra)
    except TrainConfigError as e:
        raise TrainConfigError(f"{where}: {e}" if where else str(e)) from None
    return cfg


def _fill(cfg: dict, defaults: dict) -> None:
    for k, v in defaults.items():
        if k not in cfg:
            cfg[k] = copy.deepcopy(v)
        elif isinstance(v, dict) and isinstance(cfg[k], dict) and k in _SECTIONS:
            _fill(cfg[k], v)


def resolve_config(cfg: dict) -> dict:
    """Validate ``cfg`` and fill what it lacks from the dataclass defaults, in place (a run
    built in code gets the same defaults as one built from the YAML blocks).  Returns ``cfg``."""
    validate_config(cfg)
    _fill(cfg, default_config())
    return validate_config(cfg)

ENV_CONFIG_DIR = "THRESHER_TRAIN_CONFIG_DIR"


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def default_config_dir() -> Path:
    """configs/train: $THRESHER_TRAIN_CONFIG_DIR, then ./configs/train, then the shipped thresher/configs/train."""
    env = os.environ.get(ENV_CONFIG_DIR)
    if env:
        return Path(env)
    cwd = Path.cwd() / "configs" / "train"
    if cwd.is_dir():
        return cwd
    from thresher.resources import config_dir
    return config_dir("train")


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
    extra = []
    for n in names:
        if n not in blocks:
            raise KeyError(f"unknown config block {n!r}; known: {sorted(blocks)}")
        extra += list(blocks[n].get("score_keys") or [])
    for n in names:
        validate_config({**blocks[n], "score_keys": extra}, partial=True, where=f"config block {n!r}")
        cfg = deep_merge(cfg, blocks[n])
    for k, v in overrides:
        one: dict = {}
        set_dotted(one, k, v)
        validate_config({**one, "score_keys": list(cfg.get("score_keys") or []) + list(one.get("score_keys") or [])},
                        partial=True, where=f"override --{k}")
        set_dotted(cfg, k, v)
    cfg = deep_merge(default_config(), cfg)
    validate_config(cfg)
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
