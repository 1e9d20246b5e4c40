#!/usr/bin/env bash
# Wheels the GPU machine lacks (its image has torch, timm, transformers, pandas, pyarrow ... but
# not pyiqa, open_clip or ftfy), fetched here into .whl/ (git-ignored) for the device tool's
# `carry`. Pure-Python wheels: the same files serve the GPU machine's Python 3.12.
#   bash scripts/device/fetch_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: -d .whl \
    pyiqa==0.1.16 open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4
ls -l .whl
