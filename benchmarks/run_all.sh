#!/usr/bin/env bash
# Reruns every keras_lm-vs-keras-hub speed benchmark, one after the other (~12-16 minutes on
# 2 CPU cores), printing each report. Usage, from the repository root:
#     bash benchmarks/run_all.sh [PYTHON]          # PYTHON defaults to the python on PATH
# Check `cat /proc/loadavg` first: other processes distort the numbers (see README.md).
set -euo pipefail
PYTHON="${1:-${PYTHON:-python}}"
cd "$(dirname "$0")/.."
for command in \
    "benchmarks/matmul_peak.py" \
    "benchmarks/attention_speed.py" \
    "benchmarks/matmul_ceiling.py --size=small" \
    "benchmarks/matmul_ceiling.py --size=baby" \
    "benchmarks/train_speed.py --size=small" \
    "benchmarks/train_speed.py --size=baby" \
    "benchmarks/train_speed.py --size=baby --precision=mixed_bfloat16 --peer-precision=float32 --peer-jit=on" \
    "benchmarks/generate_speed.py"; do
  echo "=== python ${command}   (load average: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?'))"
  # shellcheck disable=SC2086
  "${PYTHON}" ${command} 2> >(grep -v -e cuda -e oneDNN -e absl:: >&2)
  echo
done
