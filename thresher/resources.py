"""Files shipped inside the package (recipes, training configs, DeepSpeed JSON).

Read through :mod:`importlib.resources`, so lookup by shipped name works the same from
a checkout (``configs`` there is a symlink to ``thresher/configs``), an editable
install and a wheel install.
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def shipped(*parts: str) -> Path | None:
    """Path of ``thresher/configs/<parts...>`` if it is shipped, else None.

    Wheels install unzipped, so the traversable is a real directory on disk."""
    t = files("thresher").joinpath("configs", *parts)
    if not (t.is_file() or t.is_dir()):
        return None
    return Path(str(t))


def config_dir(*parts: str) -> Path:
    """The shipped ``thresher/configs/<parts...>`` directory (``train``, ``deepspeed``)."""
    p = shipped(*parts)
    if p is None or not p.is_dir():
        raise FileNotFoundError(f"thresher/configs/{'/'.join(parts)} is not shipped with this install")
    return p
