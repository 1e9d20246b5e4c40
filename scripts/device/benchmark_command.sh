#!/usr/bin/env bash
# The benchmark command's GPU route in one call of the device tool (about 2 minutes): the small
# benchmark of docs/benchmark.md (scripts/small_benchmark.py) with the runs on the GPU (the
# local engine pins each run to one visible GPU), then its tables and report.
#   here:    bash scripts/device/fetch_wheels.sh
#   device:  run(command="bash scripts/device/benchmark_command.sh", carry=[".whl"], timeout_s=300)
# Results come back under $OUT: benchmark.txt (the console), results.csv, runs.csv, report.md,
# devices.txt (the device each run trained on, from runs/*.json).
# Smoke test on a CPU machine: PY=python bash scripts/device/benchmark_command.sh
set -uo pipefail
source "$(dirname "$0")/setup_env.sh"
WORK=$(mktemp -d)
timeout 240 $PY scripts/small_benchmark.py "$WORK/small" --jobs 1 2>&1 | tr '\r' '\n' | grep -v '^benchmark:' \
    | tee "$OUT/benchmark.txt"
echo "== exit ${PIPESTATUS[0]}" | tee -a "$OUT/benchmark.txt"
cp "$WORK/small/bench/"{results.csv,runs.csv,report.md} "$OUT/" 2>/dev/null
$PY -c "import json, glob; [print(p.split('/')[-1], json.load(open(p)).get('device')) for p in sorted(glob.glob('$WORK/small/bench/runs/*_Split0?.json'))]" \
    | tee "$OUT/devices.txt"
