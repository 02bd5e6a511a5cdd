"""Non-neural baselines of the Shakespeare genre task: TF-IDF + logistic regression, and
multinomial naive Bayes on word counts.

The passages are exactly those of configs/shakespeare_genre.py
(`keras_lm.data.labeled.shakespeare_genre_passages(split, passage_chars=350)`): trained on
the train works, the regularisation (C of the logistic regression, alpha of naive Bayes)
chosen on the validation works, reported on the test works. Words: lower-cased
`\\b\\w+\\b` tokens (word unigrams and bigrams for TF-IDF, sublinear tf).

Usage (from the repository root; needs scikit-learn, in the `test` extra):
    python benchmarks/genre_baseline.py [--passage_chars 350] [--data ../shared/data/shakespeare]

Expected: test accuracy 0.583 / macro-F1 0.427 (TF-IDF + LR, C=1) and 0.593 / 0.448 (naive
Bayes, alpha=0.1); a few minutes on 2 shared CPU cores. See experiments/shakespeare_genre.md.
"""

import argparse
import pathlib
import sys
import time


REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # runnable without installing the package
    sys.path.insert(0, str(REPO_ROOT))

from keras_lm.data.labeled import shakespeare_genre_passages  # noqa: E402
from keras_lm.metrics.classification import accuracy  # noqa: E402
from keras_lm.metrics.classification import macro_f1  # noqa: E402

TOKEN_PATTERN = r"(?u)\b\w+\b"


def load(passage_chars, directory):
    """{split: (texts, labels)} of the genre passages."""
    data = {}
    for split in ("train", "validation", "test"):
        passages = shakespeare_genre_passages(split, directory, passage_chars=passage_chars)
        data[split] = ([p["text"] for p in passages], [p["label"] for p in passages])
    return data


def tfidf_logistic_regression(C):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(
        TfidfVectorizer(lowercase=True, token_pattern=TOKEN_PATTERN, ngram_range=(1, 2),
                        min_df=2, sublinear_tf=True),
        LogisticRegression(C=C, max_iter=2000),
    )


def naive_bayes(alpha):
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.naive_bayes import MultinomialNB
    from sklearn.pipeline import make_pipeline

    return make_pipeline(CountVectorizer(lowercase=True, token_pattern=TOKEN_PATTERN),
                         MultinomialNB(alpha=alpha))


def select_and_test(name, make, grid, data):
    """Fits one model per grid value, keeps the best validation macro-F1, scores test."""
    train_x, train_y = data["train"]
    best = None
    for value in grid:
        model = make(value).fit(train_x, train_y)
        predicted = model.predict(data["validation"][0])
        score = macro_f1(*_ids(data["validation"][1], predicted))
        print(f"  {name} {value}: validation macro-F1 {score:.4f}")
        if best is None or score > best[0]:
            best = (score, value, model)
    _, value, model = best
    rows = {}
    for split in ("validation", "test"):
        y_true, y_pred = _ids(data[split][1], model.predict(data[split][0]))
        rows[split] = (accuracy(y_true, y_pred), macro_f1(y_true, y_pred))
    return value, rows


def _ids(references, predictions):
    names = sorted(set(references) | set(predictions))
    index = {n: i for i, n in enumerate(names)}
    return [index[n] for n in references], [index[n] for n in predictions]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passage_chars", type=int, default=350)
    parser.add_argument("--data", default=None, help="corpus folder (default: shared data)")
    args = parser.parse_args()
    start = time.perf_counter()
    data = load(args.passage_chars, args.data)
    print("passages: " + ", ".join(f"{s} {len(data[s][0])}" for s in data))
    results = [
        ("TF-IDF + logistic regression", "C",
         select_and_test("tfidf_lr C", tfidf_logistic_regression, [1.0, 3.0, 10.0, 30.0], data)),
        ("multinomial naive Bayes", "alpha",
         select_and_test("nb alpha", naive_bayes, [0.1, 0.3, 1.0], data)),
    ]
    print(f"{'model':32s} {'selected':>10s} {'val acc':>8s} {'val F1':>8s} "
          f"{'test acc':>8s} {'test F1':>8s}")
    for name, parameter, (value, rows) in results:
        print(f"{name:32s} {parameter + '=' + str(value):>10s} "
              f"{rows['validation'][0]:8.4f} {rows['validation'][1]:8.4f} "
              f"{rows['test'][0]:8.4f} {rows['test'][1]:8.4f}")
    print(f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
