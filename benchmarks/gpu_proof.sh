#!/usr/bin/env bash
# The GPU proof on a machine without network: install the wheels carried in .whl/
# (see benchmarks/gpu_proof.py's docstring for the command that fetches them), then run
# benchmarks/gpu_proof.py on cuda. Usage, from the repository root:
#     bash benchmarks/gpu_proof.sh RESULTS_DIR [extra gpu_proof.py options]
# RESULTS_DIR gets gpu_proof.json, the log, and the mini run's train_log.txt and metrics_test.json.
set -uo pipefail
results="${1:?usage: bash benchmarks/gpu_proof.sh RESULTS_DIR [options]}"
shift
mkdir -p "$results"
ls .whl/*.whl >/dev/null 2>&1 || { echo "error: .whl/: no wheels; fetch them first (benchmarks/gpu_proof.py docstring)"; exit 2; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 2
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee "$results/nvidia_smi.txt"
python3 benchmarks/gpu_proof.py --device cuda --json "$results/gpu_proof.json" "$@" 2>&1 | tee "$results/gpu_proof.log"
