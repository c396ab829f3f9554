"""A wheel install works outside the checkout: recipes, training configs and DeepSpeed
JSON ship inside the package and are found by name from an empty directory.

The wheel is built from a copy of the package sources, installed with --no-deps into a
fresh venv outside the checkout; the venv sees this environment's third-party packages
through a plain .pth line (so the editable thresher finder of the dev venv is *not*
loaded), and imports thresher from its own site-packages."""
from __future__ import annotations

import glob
import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(600)


def _sh(args, cwd, env, timeout=300):
    r = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{args}: rc={r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / f, src / f)
    shutil.copytree(ROOT / "thresher", src / "thresher", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PIP_NO_INDEX"] = "1"
    _sh([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp / "dist", src],
        cwd=tmp, env=env)
    whl = glob.glob(str(tmp / "dist" / "thresher-*.whl"))
    assert len(whl) == 1
    venv = tmp / "venv"
    _sh([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp, env=env)
    py = venv / "bin" / "python"
    purelib = _sh([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp, env=env).strip()
    deps = [p for p in site.getsitepackages() if os.path.isdir(p)]
    Path(purelib, "_thresher_test_deps.pth").write_text("".join(p + "\n" for p in deps))
    _sh([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps", whl[0]], cwd=tmp, env=env)
    empty = tmp / "work"
    empty.mkdir()
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return {"whl": whl[0], "venv": venv, "py": py, "bin": venv / "bin" / "thresher", "cwd": empty, "env": env,
            "purelib": purelib}


def test_wheel_ships_configs(wheel_venv):
    names = zipfile.ZipFile(wheel_venv["whl"]).namelist()
    for f in ("pretrain-zh.yaml", "sft-zh.yaml", "default.yaml", "retier-default.yaml", "train/config.yaml",
              "train/datasets.yaml", "deepspeed/zero2.json", "deepspeed/zero3.json", "deepspeed/zero3_offload.json"):
        assert f"thresher/configs/{f}" in names, f
    assert not [n for n in names if n.startswith(("tests/", "configs/"))]


def test_imports_from_its_own_site_packages(wheel_venv):
    w = wheel_venv
    code = ("import thresher, thresher.resources as r, thresher.config as c, thresher.training.config as t, "
            "thresher.training.distributed as d, json; print(json.dumps([thresher.__file__, "
            "c.find_recipe('pretrain-zh'), str(t.default_config_dir()), str(d.resolve_ds_path('zero2'))]))")
    files = json.loads(_sh([w["py"], "-c", code], cwd=w["cwd"], env=w["env"]))
    for f in files:
        assert Path(f).resolve().is_relative_to(Path(w["purelib"]).resolve()), files
    assert not str(Path(files[0]).resolve()).startswith(str(ROOT))


def test_run_recipe_by_name_from_empty_dir(wheel_venv):
    w = wheel_venv
    _sh([w["bin"], "demo", "--out", "data/demo", "--docs", "200"], cwd=w["cwd"], env=w["env"])
    _sh([w["bin"], "run", "pretrain-zh", "--set", "inputs=[{path: data/demo/web_zh.jsonl, name: web}]",
         "--set", "output.dir=out/pretrain"], cwd=w["cwd"], env=w["env"])
    out = w["cwd"] / "out" / "pretrain"
    m = json.loads((out / "manifest.json").read_text())
    assert m["name"] == "pretrain-zh" and m["conserved"] and m["counts"]["in"] >= 200
    assert 0 < m["counts"]["kept"] < m["counts"]["in"] and list((out / "kept").glob("shard-*.jsonl.zst"))


def test_train_sft_tiny_llama_from_empty_dir(wheel_venv):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    w = wheel_venv
    cwd = w["cwd"]
    rows = [{"instruction": f"请把数字 {i} 写成中文。", "output": f"数字 {i} 的中文写法已给出。"} for i in range(8)]
    (cwd / "my_sft.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    _sh([w["bin"], "train", "init-tiny"], cwd=cwd, env=w["env"])  # default --out .cache/tiny-llama = tiny-llama's model_name
    res = _sh([w["bin"], "train", "sft", "--configs", "defaults", "tiny-llama", "--output_dir", "out/sft",
               "--set", "datasets=[{mine: {input_file_path: my_sft.jsonl}}]", "--max_steps", "2",
               "--per_device_train_batch_size", "2"], cwd=cwd, env=w["env"], timeout=400)
    summary = json.loads(res.strip().splitlines()[-1])
    assert summary["global_step"] == 2 and summary["datasets"]["mine"]["train"] >= 6
    assert any((cwd / "out" / "sft").rglob("thresher_train_config.json"))


def test_train_on_builtin_demo_block_from_empty_dir(wheel_venv):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    w = wheel_venv
    cwd = w["cwd"]
    _sh([w["bin"], "demo", "--out", "data/demo", "--docs", "200"], cwd=cwd, env=w["env"])
    if not (cwd / ".cache" / "tiny-llama" / "config.json").exists():
        _sh([w["bin"], "train", "init-tiny"], cwd=cwd, env=w["env"])
    res = _sh([w["bin"], "train", "sft", "--configs", "defaults", "tiny-llama", "datasets-builtin", "--output_dir",
               "out/sft-builtin", "--max_steps", "1", "--per_device_train_batch_size", "2"], cwd=cwd, env=w["env"],
              timeout=400)
    summary = json.loads(res.strip().splitlines()[-1])
    assert summary["global_step"] == 1 and set(summary["datasets"]) == {"demo-alpaca", "demo-sharegpt"}
