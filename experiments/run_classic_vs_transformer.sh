#!/usr/bin/env bash
# Reproduces experiments/classic_vs_transformer.md: trains / counts every classic LM and the
# Transformer on the Shakespeare character split, then evaluates each on validation and test.
# Usage: bash experiments/run_classic_vs_transformer.sh [ROOT_WORKDIR]   (default /tmp/classic)
set -euo pipefail
root="${1:-/tmp/classic}"
mkdir -p "$root"
run() {  # name, then config and overrides
  local name="$1"; shift
  echo "=== $name: keras-lm train $*" >&2
  local start=$SECONDS
  keras-lm train "$@" --workdir="$root/$name" \
    > "$root/$name.train.out" 2> "$root/$name.train.err"
  echo "$name wall_s=$((SECONDS - start))" | tee -a "$root/wall_times.txt" >&2
  tail -n 1 "$root/$name.train.err" >&2
}
run transformer --config=configs/shakespeare_char.py
run lstm --config=configs/shakespeare_lstm.py
run gru --config=configs/shakespeare_lstm.py --config.model.cell=gru
run rnn --config=configs/shakespeare_lstm.py --config.model.cell=rnn
for order in 3 5 7; do
  run "ngram$order" --config=configs/shakespeare_ngram.py --config.model.order=$order
done
for name in transformer lstm gru rnn ngram3 ngram5 ngram7; do
  for split in validation test; do
    keras-lm evaluate --workdir="$root/$name" --split=$split 2>/dev/null \
      | sed "s/^/$name /" | tee -a "$root/results.txt"
  done
done
