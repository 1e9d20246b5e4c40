#!/usr/bin/env bash
# Every GPU figure of docs/speed.md ("Speed and memory") in one call of the device tool
# (GPU machine, about 8 minutes; the working tree travels, the wheels in .whl/ are carried):
#   here:    bash scripts/device/fetch_wheels.sh
#   device:  run(command="bash scripts/device/speed_benchmark.sh", carry=[".whl"], timeout_s=600)
# Results come back under $OUT: gpu.txt, speed.txt/json, autocast.txt/json, compile.txt/json, memory.txt/json.
# Each part has its own time limit, so a slow part cannot take the others' results with it.
# Smoke test on a CPU machine: DEVICE=cpu QUICK=1 PY=python bash scripts/device/speed_benchmark.sh
set -uo pipefail
source "$(dirname "$0")/setup_env.sh"
DEVICE=${DEVICE:-cuda}
if [ -n "${QUICK:-}" ]; then  # a few seconds a part: checks the script, not the machine
    SIZE="--size 256 --batch-size 2 --repeats 1"; SCORING=8; DIFF=4; MEM="2 4"; METRICS="--metrics cianet"; TOKENS=8
else
    SIZE="--batch-size 64"; SCORING=2000; DIFF=64; MEM="64 256"; METRICS=""; TOKENS=1600
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
  $PY -c "import torch, pyiqa, open_clip, pyiqa_agiqa; print('torch', torch.__version__, 'pyiqa', pyiqa.__version__, 'open_clip', open_clip.__version__, 'plugin', pyiqa_agiqa.__version__)"
} 2>&1 | tee "$OUT/gpu.txt"
run_part() {  # name, seconds, benchmark arguments...
    local name=$1 seconds=$2; shift 2
    echo "== $name: scripts/speed_benchmark.py $*" | tee "$OUT/$name.txt"
    timeout "$seconds" $PY scripts/speed_benchmark.py --device "$DEVICE" "$@" --json "$OUT/$name.json" 2>&1 \
        | grep -v -e '^WARNING' -e 'No pretrained weights' | tee -a "$OUT/$name.txt"
    echo "== $name: exit ${PIPESTATUS[0]}" | tee -a "$OUT/$name.txt"
}
run_part speed 270 $SIZE $METRICS --precisions fp32 fp16 bf16 --train --scoring $SCORING --workers 12 \
    --precision-diff $DIFF
run_part autocast 90 $SIZE $METRICS --precisions bf16 fp16 --autocast
run_part compile 120 $SIZE ${METRICS:---metrics ipce cianet clip_agiqa dcmpl} --precisions bf16 --compile
run_part memory 60 $SIZE $METRICS --precisions bf16 --memory $MEM --skip-speed --dcmpl-tokens $TOKENS
