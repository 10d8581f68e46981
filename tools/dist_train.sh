#!/usr/bin/env bash
# Distributed training with torchrun and mmengine's DDP launcher.
#   bash tools/dist_train.sh CONFIG NUM_PROCESSES [train.py options]
# Without CUDA the processes use the gloo backend on CPU. PYTHON picks the interpreter
# (default: the repository's .venv if present, else python3); it imports the installed mmkd
# (tools/install.sh: `pip install -e .`).
set -euo pipefail
CONFIG=$1
NPROC=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
here="$(cd "$(dirname "$0")" && pwd)"
default_python=python3
[[ -x "$here/../.venv/bin/python" ]] && default_python="$here/../.venv/bin/python"
"${PYTHON:-$default_python}" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROC" --master_port="$PORT" \
    "$here/train.py" "$CONFIG" --launcher pytorch "${@:3}"
