"""Builds the table of experiments/classic_vs_transformer.md from the workdirs of
`experiments/run_classic_vs_transformer.sh`.

    python experiments/classic_table.py --root=/tmp/classic

Reads ROOT/results.txt (the `keras-lm evaluate` lines), ROOT/wall_times.txt and each
workdir's config (to count parameters) and prints a markdown table.
"""

import os
import re

from absl import app
from absl import flags

_ROOT = flags.DEFINE_string("root", "/tmp/classic", "Root of the experiment workdirs.")
NAMES = ("ngram3", "ngram5", "ngram7", "hmm64_em", "hmm64_fit", "rnn", "gru", "lstm",
         "transformer")


def _metrics(root):
    table = {}
    with open(os.path.join(root, "results.txt"), encoding="utf-8") as f:
        for line in f:
            match = re.match(r"(\S+) (\S+) @ step (\d+): (.*)", line.strip())
            if not match:
                continue
            name, split, step, rest = match.groups()
            values = dict(re.findall(r"(\w+)=([0-9.]+)", rest))
            table[(name, split)] = {k: float(v) for k, v in values.items()} | {"step": int(step)}
    return table


def _wall_times(root):
    times = {}
    with open(os.path.join(root, "wall_times.txt"), encoding="utf-8") as f:
        for line in f:
            match = re.match(r"(\S+) wall_s=(\d+)", line)
            if match:
                times.setdefault(match.group(1), int(match.group(2)))  # the first (training) run
    return times


def _parameters(workdir):
    from keras_lm.tasks import language_model

    config, tokenizer, model, _ = language_model.load(workdir)
    if hasattr(model, "count_params"):
        return f"{model.count_params():,}"
    counts = model.ngram_counts
    counts = counts() if callable(counts) else counts
    return f"{sum(counts):,} n-grams"


def main(argv):
    del argv
    root = _ROOT.value
    metrics, times = _metrics(root), _wall_times(root)
    print("| model | parameters | training wall time | steps | validation bpc | test bpc "
          "| test perplexity (per char) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in NAMES:
        if (name, "test") not in metrics:
            continue
        val, test = metrics[(name, "validation")], metrics[(name, "test")]
        seconds = times.get(name)
        print(f"| {name} | {_parameters(os.path.join(root, name))} | "
              f"{'' if seconds is None else f'{seconds} s'} | {test['step']} | "
              f"{val['bits_per_character']:.3f} | {test['bits_per_character']:.3f} | "
              f"{2 ** test['bits_per_character']:.2f} |")


if __name__ == "__main__":
    app.run(main)
