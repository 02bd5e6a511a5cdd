"""Character-level HMM on Shakespeare: Baum-Welch vs gradient training, validation bits/char.

Corpus: the canonical character-level split of ../shared/data/shakespeare/README.md
(`keras_lm.data.canonical_text`: train = the 36 train works joined with "\\n\\n", 4,259,608
characters; validation = macbeth, much_ado_about_nothing, richard_ii, 356,078 characters);
vocabulary = `CharTokenizer.fit` on all three splits (4 specials + the characters).

For each number of states K:
- EM: `baum_welch` on the train text cut into chunks of `--chunk` characters (each chunk
  starts from pi), `--em-iterations` iterations, pseudo-count `--pseudo-count`.
- Gradient: a fresh model trained by `model.fit` on the keras_lm LM pipeline
  (`lm_dataset`, windows of `--window` characters, batch `--batch-size`, Adam) for `--steps`
  steps, with the next-token cross-entropy of `HMMLanguageModel.call`.
Validation bits per character are exact: the forward algorithm over the whole validation
text as one sequence, -log2 P(text) / characters (every character scored, the first from pi),
comparable to `benchmarks/ngram_speed.py`.

Usage (from the repository root):
    python benchmarks/hmm_shakespeare.py [--states 16 64] [--em-iterations 10] [--steps 300]

Measured (2 CPU cores shared with other jobs, so wall times are loose; vocabulary 88):
    K  training            wall s   val bpc
   16  EM x10 (default)        34     4.038
   16  fit x300 (default)      16     3.854
   64  EM x10 (default)        96     3.624
   64  fit x300 (default)      20     3.390
   64  EM x30                 715 *   3.302   (train bpc still falling ~0.005/iteration)
   64  fit x1000              143 *   3.316
(* under a load average of ~11.) EM from a random start first collapses to near-unigram
(~4.8 train bpc) and needs ~5 iterations to separate the states. For scale, the n-gram
table of `benchmarks/ngram_speed.py`: 3-gram 2.934 bpc.
"""

import argparse
import math
import pathlib
import sys
import time

import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # runnable without installing the package
    sys.path.insert(0, str(REPO_ROOT))

import keras  # noqa: E402

from keras_lm.data import SPLITS  # noqa: E402
from keras_lm.data import canonical_text  # noqa: E402
from keras_lm.data import lm_dataset  # noqa: E402
from keras_lm.models.hmm_em import baum_welch  # noqa: E402
from keras_lm.models.hmm_lm import HMMLanguageModel  # noqa: E402
from keras_lm.tokenizers import CharTokenizer  # noqa: E402


def bits_per_character(model, ids):
    """Exact -log2 P(ids) / len(ids), the whole text as one sequence."""
    log_likelihood = float(np.asarray(model.log_likelihood(ids[None, :]))[0])
    return -log_likelihood / (len(ids) * math.log(2))


def train_em(args, num_states, vocabulary_size, train_ids):
    keras.utils.set_random_seed(args.seed)
    model = HMMLanguageModel(num_states, vocabulary_size)
    usable = len(train_ids) // args.chunk * args.chunk
    chunks = train_ids[:usable].reshape(-1, args.chunk)  # (N, chunk), every token real
    start = time.perf_counter()
    history = baum_welch(model, chunks, iterations=args.em_iterations,
                         pseudo_count=args.pseudo_count, batch_size=args.em_batch_size)
    seconds = time.perf_counter() - start
    per_char = -history / (chunks.size * math.log(2))
    print(f"  EM train bpc by iteration: {' '.join(f'{b:.3f}' for b in per_char)}")
    return model, seconds


def train_gradient(args, num_states, tokenizer, train_text):
    keras.utils.set_random_seed(args.seed)
    model = HMMLanguageModel(num_states, tokenizer.vocabulary_size)
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    dataset = lm_dataset([train_text], tokenizer, args.window, args.batch_size, training=True,
                         seed=args.seed)
    start = time.perf_counter()
    history = model.fit(dataset, steps_per_epoch=args.steps, epochs=1, shuffle=False, verbose=0)
    seconds = time.perf_counter() - start
    loss = history.history["loss"][-1]
    print(f"  gradient final train loss {loss / math.log(2):.3f} bits/char")
    return model, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--states", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--em-iterations", type=int, default=10)
    parser.add_argument("--pseudo-count", type=float, default=1e-3)
    parser.add_argument("--chunk", type=int, default=512, help="EM sequence length")
    parser.add_argument("--em-batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=300, help="gradient steps")
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    texts = {split: canonical_text(split) for split in SPLITS}
    tokenizer = CharTokenizer.fit(list(texts.values()))
    train_ids = np.asarray(tokenizer.tokenize(texts["train"]))
    validation_ids = np.asarray(tokenizer.tokenize(texts["validation"]))
    print(f"train {train_ids.size:,} chars, validation {validation_ids.size:,} chars, "
          f"vocabulary_size {tokenizer.vocabulary_size}")

    rows = []
    for num_states in args.states:
        print(f"K={num_states}")
        model, seconds = train_em(args, num_states, tokenizer.vocabulary_size, train_ids)
        rows.append((num_states, f"EM x{args.em_iterations}", seconds,
                     bits_per_character(model, validation_ids)))
        model, seconds = train_gradient(args, num_states, tokenizer, texts["train"])
        rows.append((num_states, f"fit x{args.steps}", seconds,
                     bits_per_character(model, validation_ids)))
        for row in rows[-2:]:
            print(f"  {row[1]:>10}: {row[2]:7.1f} s, validation {row[3]:.3f} bpc")

    print(f"\n{'K':>4} {'training':>10} {'wall s':>8} {'val bpc':>8}")
    for num_states, method, seconds, bpc in rows:
        print(f"{num_states:>4} {method:>10} {seconds:>8.1f} {bpc:>8.3f}")


if __name__ == "__main__":
    main()
