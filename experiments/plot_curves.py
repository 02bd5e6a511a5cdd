"""Plots training and validation curves of keras_lm workdirs from their TensorBoard logs.

    python experiments/plot_curves.py --workdir=/tmp/shakespeare_char \
        --out=experiments/shakespeare_char.png
    python experiments/plot_curves.py --workdir=/tmp/a --workdir=/tmp/b --x=time --out=cmp.png

The y axis is bits per token (log2 of the perplexity metric, exact over real tokens), which
for a character-level model is bits per character, read from each workdir's `metrics.jsonl`
(one line per evaluation, written by `keras_lm.training.fit`).
Needs matplotlib (`pip install matplotlib`), which keras_lm itself does not depend on.
"""

import json
import math
import os

from absl import app
from absl import flags

_WORKDIRS = flags.DEFINE_multi_string("workdir", None, "keras_lm workdir(s) to plot.")
_LABELS = flags.DEFINE_multi_string("label", None, "Legend label per workdir (default: name).")
_OUT = flags.DEFINE_string("out", None, "PNG file to write.")
_X = flags.DEFINE_enum("x", "step", ["step", "time"], "x axis: training step or wall time.")
_SPLITS = flags.DEFINE_multi_enum("split", ["train", "validation"], ["train", "validation"],
                                  "Curves to draw.")


def read_curves(workdir):
    """{"train": [(step, seconds, bits)], "validation": [...]} from `metrics.jsonl`.

    Bits are log2 of the perplexity metrics (exact token-weighted means): training's is the
    running mean since the previous evaluation, validation's the whole validation set (or its
    first `eval_steps` batches).
    """
    curves = {"train": [], "validation": []}
    with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            for split, key in (("train", "perplexity"), ("validation", "val_perplexity")):
                if key in record:
                    curves[split].append(
                        (record["step"], record["elapsed_s"], math.log2(record[key])))
    return curves


def main(argv):
    del argv
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = _LABELS.value or [os.path.basename(w.rstrip("/")) for w in _WORKDIRS.value]
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for index, (workdir, label) in enumerate(zip(_WORKDIRS.value, labels)):
        curves = read_curves(workdir)
        for split, style in (("train", ":"), ("validation", "-")):
            points = curves[split]
            if not points or split not in _SPLITS.value:
                continue
            xs = [p[0] if _X.value == "step" else p[1] for p in points]
            axis.plot(xs, [p[2] for p in points], style, color=f"C{index}",
                      marker="o" if split == "validation" else None, markersize=3,
                      label=f"{label} ({split})")
    axis.set_xlabel("training step" if _X.value == "step" else "wall time (s)")
    axis.set_ylabel("bits per token")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(_OUT.value, dpi=110)
    print(f"wrote {_OUT.value}")


if __name__ == "__main__":
    flags.mark_flags_as_required(["workdir", "out"])
    app.run(main)
