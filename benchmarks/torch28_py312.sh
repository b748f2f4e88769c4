#!/usr/bin/env bash
# The fast tests on the SageMaker image's versions: Python 3.12 with torch 2.8.0 and
# torchaudio 2.8.0 (pytorch-training:2.8-gpu-py312), the other packages pinned as the
# job installs them (stop_slu/sagemaker/constraints.txt).
#
#   benchmarks/torch28_py312.sh [PYTHON3.12] [VENV]
#
# The PyPI wheels of torch 2.8.0 are the CUDA ones; they are installed without their
# nvidia-* dependencies (several GB), so torch runs on the CPU only, as in the tests.
# Prints the versions it ran with, then pytest's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${1:-python3.12}
VENV=${2:-/tmp/stop-slu-py312-torch28}
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --no-deps "torch==2.8.0" "torchaudio==2.8.0"
"$VENV/bin/pip" install -q sympy networkx jinja2 filelock fsspec typing-extensions
# The package and its pinned dependencies, without letting pip pull torch's nvidia-* packages back in.
"$VENV/bin/pip" install -q --no-deps -e .
grep -v '^#' stop_slu/sagemaker/constraints.txt > "$VENV/pins.txt"
"$VENV/bin/pip" install -q -r "$VENV/pins.txt" pytest inotify_simple
"$VENV/bin/python" -c "import sys, torch, torchaudio, speechbrain; print('python', sys.version.split()[0], \
'torch', torch.__version__, 'torchaudio', torchaudio.__version__, 'speechbrain', speechbrain.__version__)"
"$VENV/bin/python" -m pytest -q -m "not slow" tests/unit -p no:cacheprovider
