"""NGramLM fit time and validation bits per character on the Shakespeare character corpus.

Corpus: the canonical character-level split of ../shared/data/shakespeare/README.md (train =
the `modern` texts of the 36 train works joined with "\\n\\n", about 4.4 M characters;
validation = macbeth, much_ado_about_nothing, richard_ii). Ids: 0 pad, 1 BOS, 2 EOS, then the
sorted characters of all three splits. Each split is one document.

Usage (from the repository root; numpy sorts on one core):
    python benchmarks/ngram_speed.py [--orders 3 5 7] [--data ../shared/data/shakespeare]

Expected (measured on 2 shared CPU cores; the budget is a minute for the 5-gram):
    order  fit s  n-grams    val bpc
        3   ~3       20,684    2.934
        5   ~4-6    404,663    2.200
        7   ~10-12 2,251,335   2.092
Bits per character count the characters, not the final EOS. Peak memory ~1.3 GB (7-gram,
with the TensorFlow import that `keras_lm` brings).
"""

import argparse
import csv
import math
import pathlib
import sys
import time

import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # runnable without installing the package
    sys.path.insert(0, str(REPO_ROOT))

from keras_lm.models.ngram_lm import NGramLM  # noqa: E402

PAD_ID, BOS_ID, EOS_ID = 0, 1, 2


def read_splits(data_dir):
    """{split: text} per the README's canonical character-level corpus."""
    texts = {"train": [], "validation": [], "test": []}
    with open(data_dir / "works.tsv", encoding="utf-8") as file:
        for row in csv.DictReader(file, delimiter="\t"):
            text = (data_dir / row["modern_file"]).read_text(encoding="utf-8")
            texts[row["split"]].append(text)
    return {split: "\n\n".join(parts) for split, parts in texts.items()}


def encode(text, characters):
    """Characters -> ids 3.. by a sorted lookup (vectorised over the text)."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    alphabet = np.array([ord(c) for c in characters], dtype=np.uint32)  # sorted
    return np.searchsorted(alphabet, codes).astype(np.int64) + 3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[3, 5, 7])
    parser.add_argument(
        "--data", type=pathlib.Path, default=REPO_ROOT.parent / "shared" / "data" / "shakespeare"
    )
    args = parser.parse_args()

    splits = read_splits(args.data)
    characters = sorted(set("".join(splits.values())))
    vocabulary_size = len(characters) + 3
    train = encode(splits["train"], characters)
    validation = encode(splits["validation"], characters)
    print(
        f"train {train.size:,} chars, validation {validation.size:,} chars, "
        f"vocabulary_size {vocabulary_size}"
    )
    print(f"{'order':>5} {'fit s':>7} {'score s':>8} {'n-grams':>11} {'val bpc':>8}")
    for order in args.orders:
        lm = NGramLM(order, vocabulary_size, BOS_ID, EOS_ID)
        start = time.perf_counter()
        lm.fit([train])
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        log_probs = lm.token_log_probs(validation)[:-1]  # characters only, not the EOS
        score_seconds = time.perf_counter() - start
        bits_per_character = -log_probs.mean() / math.log(2)
        print(
            f"{order:>5} {fit_seconds:>7.2f} {score_seconds:>8.2f} "
            f"{sum(lm.ngram_counts):>11,} {bits_per_character:>8.3f}"
        )


if __name__ == "__main__":
    main()
