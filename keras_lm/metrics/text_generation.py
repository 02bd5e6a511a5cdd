"""Metrics of generated text against references: BLEU, chrF, exact match, character error rate.

BLEU (Papineni et al., 2002) and chrF (Popović, 2015) come from sacrebleu with its standard
settings, so scores are comparable with published ones; report them with their signatures
(`bleu_signature()`, `chrf_signature()`), e.g.
`nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0`. Both are corpus-level scores
in [0, 100].

Exact match is the fraction of outputs identical to their reference (no normalisation).
Character error rate is the corpus Levenshtein distance over the corpus reference length:
sum_i d(h_i, r_i) / sum_i |r_i|, in characters (Unicode code points); it can exceed 1.
"""

import numpy as np


def _check(hypotheses, references):
    if isinstance(hypotheses, str) or isinstance(references, str):
        raise TypeError(
            "`hypotheses` and `references` must be lists of str (one output and one reference "
            "an example), not one str. Wrap it: [text]."
        )
    for name, texts in (("hypotheses", hypotheses), ("references", references)):
        if texts is None or isinstance(texts, bytes) or not hasattr(texts, "__iter__"):
            raise TypeError(
                f"`{name}` must be a list of str (one text an example); received "
                f"{type(texts).__name__}."
            )
    hypotheses, references = list(hypotheses), list(references)
    if len(hypotheses) != len(references):
        raise ValueError(
            "`hypotheses` and `references` must have the same length. Received: "
            f"{len(hypotheses)} hypotheses, {len(references)} references."
        )
    if not hypotheses:
        raise ValueError("`hypotheses` is empty; score at least one example.")
    for name, texts in (("hypotheses", hypotheses), ("references", references)):
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(
                    f"`{name}` must hold str; received {name}[{index}]={text!r:.60} of type "
                    f"{type(text).__name__}."
                )
    return hypotheses, references


def _sacrebleu(name, hypotheses, references):
    """(score, signature) of sacrebleu's BLEU or CHRF with default settings, one reference."""
    from sacrebleu.metrics import BLEU
    from sacrebleu.metrics import CHRF

    hypotheses, references = _check(hypotheses, references)
    metric = BLEU() if name == "bleu" else CHRF()
    score = metric.corpus_score(hypotheses, [references]).score
    return float(score), str(metric.get_signature())  # the signature needs a scored corpus


def corpus_bleu(hypotheses, references):
    """sacrebleu corpus BLEU (13a tokenisation, exponential smoothing), in [0, 100].

    Example:
    >>> round(corpus_bleu(["the cat sat on the mat"], ["the cat sat on a mat"]), 2)
    53.73
    """
    return _sacrebleu("bleu", hypotheses, references)[0]


def corpus_chrf(hypotheses, references):
    """sacrebleu corpus chrF (character 6-grams, beta = 2, whitespace ignored), in [0, 100].

    Example:
    >>> round(corpus_chrf(["the cat sat on the mat"], ["the cat sat on a mat"]), 2)
    72.08
    """
    return _sacrebleu("chrf", hypotheses, references)[0]


def bleu_signature():
    """sacrebleu's signature of `corpus_bleu`'s settings (cite it with the score).

    Example:
    >>> bleu_signature().startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp")
    True
    """
    return _sacrebleu("bleu", ["a"], ["a"])[1]


def chrf_signature():
    """sacrebleu's signature of `corpus_chrf`'s settings (cite it with the score).

    Example:
    >>> chrf_signature().startswith("nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no")
    True
    """
    return _sacrebleu("chrf", ["a"], ["a"])[1]


def exact_match(hypotheses, references):
    """Fraction of hypotheses equal to their reference.

    Example:
    >>> exact_match(["a b", "c"], ["a b", "d"])
    0.5
    """
    hypotheses, references = _check(hypotheses, references)
    return float(np.mean([h == r for h, r in zip(hypotheses, references)]))


def edit_distance(a, b):
    """Levenshtein distance: fewest insertions, deletions and substitutions from a to b.

    Works on str (characters) or any sequences (e.g. word lists).

    Example:
    >>> edit_distance("kitten", "sitting")
    3
    """
    if len(a) < len(b):
        a, b = b, a  # keep the row over the shorter sequence
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def character_error_rate(hypotheses, references):
    """Corpus character error rate: sum of edit distances / sum of reference lengths.

    Returns:
        A float >= 0 (0 when every hypothesis equals its reference); references of total
        length 0 give 0 if all hypotheses are empty, else inf.

    Example:
    >>> character_error_rate(["sitting", "abc"], ["kitten", "abc"])  # (3 + 0) / (6 + 3)
    0.3333333333333333
    """
    hypotheses, references = _check(hypotheses, references)
    errors = sum(edit_distance(h, r) for h, r in zip(hypotheses, references))
    length = sum(len(r) for r in references)
    if length == 0:
        return 0.0 if errors == 0 else float("inf")
    return errors / length


def text_generation_metrics(hypotheses, references):
    """All four metrics and the sacrebleu signatures in one dict.

    Returns:
        {"bleu", "chrf", "exact_match", "character_error_rate", "examples",
         "bleu_signature", "chrf_signature"}.

    Example:
    >>> text_generation_metrics(["a b c d"], ["a b c d"])["exact_match"]
    1.0
    """
    # Read once: the four metrics below would each iterate a generator or other one-pass
    # iterable, and all but the first would see it empty.
    hypotheses, references = _check(hypotheses, references)
    bleu, bleu_sig = _sacrebleu("bleu", hypotheses, references)
    chrf, chrf_sig = _sacrebleu("chrf", hypotheses, references)
    return {
        "bleu": bleu,
        "chrf": chrf,
        "exact_match": exact_match(hypotheses, references),
        "character_error_rate": character_error_rate(hypotheses, references),
        "examples": len(hypotheses),
        "bleu_signature": bleu_sig,
        "chrf_signature": chrf_sig,
    }
