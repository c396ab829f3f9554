import os
import subprocess
import sys

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))
PLUGIN = os.path.join(REPO, "tests", "plugins", "basic_stages.py")


def shared_path(*parts: str) -> str:
    path = os.path.join(SHARED, *parts)
    if not os.path.exists(path):
        pytest.skip("../shared/data not present")
    return path


def write_recipe(path, inputs, out_dir, stages, **executor):
    recipe = {"name": "test", "plugins": [PLUGIN], "inputs": inputs, "output": {"dir": str(out_dir)},
              "executor": {"workers": 2, "shard_bytes": "20KB", "progress_interval": 1, **executor},
              "stages": stages}
    with open(path, "w") as f:
        yaml.safe_dump(recipe, f, allow_unicode=True)
    return str(path)


def thresher_cmd(*args):
    return [sys.executable, "-m", "thresher.cli", *args]


def run_cli(*args, check=True, **kw):
    proc = subprocess.run(thresher_cmd(*args), capture_output=True, text=True, cwd=kw.pop("cwd", REPO), **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"thresher {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc
