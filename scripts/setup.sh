#!/usr/bin/env bash
# Create .venv and install thresher.  Usage: bash scripts/setup.sh [extras]
#   extras: comma list of pyproject extras (default "score"; tests use "all").
# torch is installed first from the pinned CPU build on this kind of machine so that
# no extra's torch range pulls a multi-GB CUDA build; on a GPU cluster install your
# CUDA torch before running this and the ranges accept it.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-score}"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
needs_torch=0
case ",$EXTRAS," in *,all,*|*,embed,*|*,train,*) needs_torch=1 ;; esac
if [ "$needs_torch" = 1 ] && ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    .venv/bin/python -m pip install -q torch
  else
    .venv/bin/python -m pip install -q "torch==2.13.0"
  fi
fi
.venv/bin/python -m pip install -q -e ".[${EXTRAS}]"
# optional: a CJK font so report plots can label clusters with their Chinese keywords
# (without it they fall back to c<id> labels); never fatal
if ! fc-list :lang=zh 2>/dev/null | grep -q . && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get install -y -q fonts-wqy-microhei >/dev/null 2>&1 \
     || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q fonts-wqy-microhei >/dev/null 2>&1; }) \
     || echo "note: no CJK font installed; report plots will label clusters c<id>"
fi
echo "thresher installed in .venv with extras [${EXTRAS}]"
