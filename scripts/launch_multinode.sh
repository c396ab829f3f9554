#!/usr/bin/env bash
# Multi-node launch of `thresher train` with DeepSpeed's launcher (pdsh/ssh fan-out).
#
#   scripts/launch_multinode.sh HOSTFILE sft --configs defaults llama-7b zero3 datasets-tiers \
#       --output_dir /shared/runs/llama7b-sft
#
# HOSTFILE format (DeepSpeed): one line per node, "<hostname> slots=<GPUs on that node>", e.g.
#     node-01 slots=8
#     node-02 slots=8
# The first host is the master (MASTER_ADDR).  Every node must be reachable by passwordless
# ssh from the node you launch on, and must have:
#   * the SAME checkout path and the SAME Python environment (same torch/deepspeed/transformers
#     builds; a venv on a shared filesystem is simplest) -- ranks that disagree on versions hang
#     in the first collective instead of failing;
#   * the model (/models/...), data and output_dir on paths that resolve identically (shared FS),
#     because rank 0 writes checkpoints that every rank later reads on resume;
#   * the same environment variables: DeepSpeed forwards the ones listed in ~/.deepspeed_env
#     (and DS_ENV_FILE) to every node, so NCCL settings go there.  This script writes the NCCL
#     and cache variables below into a run-specific env file and points DS_ENV_FILE at it.
#
# NCCL knobs you may need (set them in your shell before calling this script):
#   NCCL_SOCKET_IFNAME=eth0        interface for bootstrap/socket traffic (not docker0/lo)
#   NCCL_IB_HCA=mlx5               InfiniBand adapters; NCCL_IB_DISABLE=1 if there is no IB
#   NCCL_DEBUG=INFO                print the chosen transport once when debugging
#   NCCL_ASYNC_ERROR_HANDLING=1    turn a dead peer into an error instead of a hang
set -euo pipefail

if [[ $# -lt 2 ]]; then
  sed -n '2,30p' "$0"; exit 2
fi
HOSTFILE=$1; shift
[[ -f "$HOSTFILE" ]] || { echo "hostfile $HOSTFILE not found" >&2; exit 2; }

REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$REPO/.venv/bin/python}
MASTER_ADDR=${MASTER_ADDR:-$(awk 'NF && $1 !~ /^#/ {print $1; exit}' "$HOSTFILE")}
MASTER_PORT=${MASTER_PORT:-29500}
RUN_ENV=${DS_ENV_FILE:-$REPO/.cache/deepspeed_env.$$}
mkdir -p "$(dirname "$RUN_ENV")"
: > "$RUN_ENV"
for v in NCCL_SOCKET_IFNAME NCCL_IB_HCA NCCL_IB_DISABLE NCCL_DEBUG NCCL_ASYNC_ERROR_HANDLING \
         NCCL_P2P_DISABLE HF_HOME HF_HUB_OFFLINE TORCH_EXTENSIONS_DIR PYTHONPATH; do
  if [[ -n "${!v:-}" ]]; then echo "$v=${!v}" >> "$RUN_ENV"; fi
done
grep -q '^HF_HUB_OFFLINE=' "$RUN_ENV" || echo "HF_HUB_OFFLINE=1" >> "$RUN_ENV"   # models are local paths
export DS_ENV_FILE=$RUN_ENV

cd "$REPO"
exec "$PY" -m deepspeed.launcher.runner --hostfile "$HOSTFILE" \
  --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT" \
  --module thresher.training "$@"
