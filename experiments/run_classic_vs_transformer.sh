#!/usr/bin/env bash
# Reproduces experiments/classic_vs_transformer.md: trains / counts every classic LM and the
# Transformer on the Shakespeare character split, then evaluates each on validation and test.
# Usage: bash experiments/run_classic_vs_transformer.sh [ROOT_WORKDIR] [ROW ...]
#   ROOT_WORKDIR defaults to /tmp/classic; ROWs (default: all) are names of the table's rows:
#   transformer lstm gru rnn ngram3 ngram5 ngram7 hmm64_em hmm64_fit  (about 1 h for all on 2
#   cores; the n-gram and HMM rows take about 8 minutes together).
# Then: python experiments/classic_table.py --root=ROOT_WORKDIR
set -euo pipefail
root="${1:-/tmp/classic}"
shift || true
rows=("$@")
if [ "${#rows[@]}" -eq 0 ]; then
  rows=(transformer lstm gru rnn ngram3 ngram5 ngram7 hmm64_em hmm64_fit)
fi
mkdir -p "$root"
config_of() {  # the row's config and overrides
  case "$1" in
    transformer) echo "--config=configs/shakespeare_char.py" ;;
    lstm) echo "--config=configs/shakespeare_lstm.py" ;;
    gru|rnn) echo "--config=configs/shakespeare_lstm.py --config.model.cell=$1" ;;
    ngram3|ngram5|ngram7) echo "--config=configs/shakespeare_ngram.py --config.model.order=${1#ngram}" ;;
    hmm64_em) echo "--config=configs/shakespeare_hmm.py" ;;
    hmm64_fit) echo "--config=configs/shakespeare_hmm.py --config.em.iterations=0" ;;
    *) echo "unknown row '$1'; rows: transformer lstm gru rnn ngram3 ngram5 ngram7 hmm64_em hmm64_fit" >&2
       return 1 ;;
  esac
}
for name in "${rows[@]}"; do config_of "$name" > /dev/null; done  # refuse a typo before training
for name in "${rows[@]}"; do
  args="$(config_of "$name")"
  echo "=== $name: keras-lm train $args" >&2
  start=$SECONDS
  # shellcheck disable=SC2086
  keras-lm train $args --workdir="$root/$name" \
    > "$root/$name.train.out" 2> "$root/$name.train.err"
  echo "$name wall_s=$((SECONDS - start))" | tee -a "$root/wall_times.txt" >&2
  tail -n 1 "$root/$name.train.err" >&2
done
for name in "${rows[@]}"; do
  for split in validation test; do
    keras-lm evaluate --workdir="$root/$name" --split=$split 2>/dev/null \
      | sed "s/^/$name /" | tee -a "$root/results.txt"
  done
done
