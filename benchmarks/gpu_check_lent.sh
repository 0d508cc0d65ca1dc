#!/usr/bin/env bash
# `make gpu-check` on a machine with python3, PyTorch and CuPy but no network and no venv (the
# project's lent H200 is one): the packages it lacks travel as wheels in .whl/, made here by
# `make gpu-wheels`; the checks' records come back as one archive, since such a machine
# returns only a few files.
#
#     bash benchmarks/gpu_check_lent.sh OUT_DIR [gpucheck options]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:?give the folder for gpu_results.tar.gz}"; shift
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH="/tmp/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 REPROBOOK_PROGRESS=0
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
status=0
python3 -m reprobook.gpucheck "$@" || status=$?
tar czf "$out/gpu_results.tar.gz" results/gpu_check.json results/*/gpu.json 2>/dev/null || true
exit $status
