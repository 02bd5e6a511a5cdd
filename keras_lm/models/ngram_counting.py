"""Plain functions behind `NGramLM.fit`: input checks, padding, counting, modified Kneser-Ney.

Counting is vectorised over token positions. The k-gram ending at position q of the padded
corpus gets an integer id built order by order,

    id_1[q] = token[q],    id_k[q] = rank of (id_{k-1}[q - 1] * V + token[q]),

so one `np.unique` per order finds every distinct k-gram, and no key exceeds
(corpus length) * V: any order and any vocabulary size fit in int64.

The result is a set of backoff tables (see `ngram_backoff.py`): for each order, the seen n-grams
with their full interpolated log-probability and log-backoff (the gamma of the n-gram as a
context). Sequence starts are stored "collapsed": the model pads with N-1 BOS, but the tables
hold a single leading BOS, as the ARPA format and KenLM expect (see `kneser_ney_tables`).
"""

import numpy as np

# Discounts (D1, D2, D3+) used when an order's counts-of-counts cannot give valid ones; these
# are KenLM's defaults for `lmplz --discount_fallback`.
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)


def check_sequences(sequences, vocabulary_size, bos_id, name="sequences"):
    """Validates documents of token ids and concatenates them.

    Args:
        sequences: iterable of 1-D integer arrays (or lists), one per document, without BOS.
        vocabulary_size: int, ids must lie in [0, vocabulary_size).
        bos_id: int, must not occur (the model adds BOS itself).
        name: str, the argument name used in error messages.

    Returns:
        (flat, lengths): int64 [L] all ids in order, int64 [D] the document lengths.
    """
    if isinstance(sequences, np.ndarray) and sequences.ndim == 1:
        raise ValueError(
            f"`{name}` must be a list of 1-D id arrays, one per document. Received a single "
            f"1-D array of shape {sequences.shape}; wrap it in a list: [{name}]."
        )
    try:
        arrays = [np.asarray(s) for s in sequences]
    except TypeError as error:
        raise ValueError(
            f"`{name}` must be a list of 1-D id arrays. Received: {type(sequences).__name__}."
        ) from error
    if not arrays:
        raise ValueError(f"`{name}` is empty. Pass at least one document (a 1-D id array).")
    for i, array in enumerate(arrays):
        if array.ndim != 1:
            raise ValueError(
                f"`{name}[{i}]` must be a 1-D array of token ids. Received shape "
                f"{array.shape}. Pass one 1-D id array per document."
            )
        if array.size and not np.issubdtype(array.dtype, np.integer):
            raise ValueError(
                f"`{name}[{i}]` must hold integer token ids. Received dtype {array.dtype}."
            )
    lengths = np.array([a.size for a in arrays], dtype=np.int64)
    flat = (
        np.concatenate([a.astype(np.int64) for a in arrays])
        if lengths.sum()
        else np.zeros(0, np.int64)
    )
    bad = np.flatnonzero((flat < 0) | (flat >= vocabulary_size))
    if bad.size:
        document = int(np.searchsorted(np.cumsum(lengths), bad[0], side="right"))
        raise ValueError(
            f"`{name}[{document}]` holds id {int(flat[bad[0]])}, outside "
            f"[0, vocabulary_size={vocabulary_size}): the ids come from a vocabulary that does "
            "not match the model. Tokenize with the tokenizer the model was built for, or "
            "build the model with that tokenizer's vocabulary_size."
        )
    bos_positions = np.flatnonzero(flat == bos_id)
    if bos_positions.size:
        document = int(np.searchsorted(np.cumsum(lengths), bos_positions[0], side="right"))
        raise ValueError(
            f"`{name}[{document}]` holds bos_id={bos_id}. NGramLM adds the BOS padding itself "
            "and never predicts BOS: pass the ids without BOS."
        )
    return flat, lengths


def pad_sequences(flat, lengths, order, bos_id, eos_id):
    """Concatenates `[BOS] * (N - 1) + document + [EOS]` for every document.

    Args:
        flat: int64 [L], the documents' ids concatenated.
        lengths: int64 [D], the document lengths (sum L).
        order: int N.
        bos_id, eos_id: ints.

    Returns:
        int64 [L + D * N]. The predicted positions are exactly those not holding BOS.
    """
    padded = lengths + order
    ends = np.cumsum(padded)
    first = ends - padded + order - 1  # position of each document's first token (or EOS)
    tokens = np.full(int(ends[-1]), bos_id, dtype=np.int64)
    offsets = np.cumsum(lengths) - lengths
    tokens[np.arange(flat.size) + np.repeat(first - offsets, lengths)] = flat
    tokens[first + lengths] = eos_id
    return tokens


def kneser_ney_discounts(counts):
    """Modified Kneser-Ney discounts of one order (Chen & Goodman 1998, eq. 26).

    With n_r the number of n-grams whose count is exactly r:
        Y = n1 / (n1 + 2 n2),  D1 = 1 - 2Y n2/n1,  D2 = 2 - 3Y n3/n2,  D3+ = 3 - 4Y n4/n3.
    Fallback: if n1, n2 or n3 is zero (a formula divides by it) or an estimate leaves
    0 < D_r <= r (r = 1, 2, 3; D_r > r would make a count negative, D_r = 0 could leave no mass
    for unseen tokens), the order uses `FALLBACK_DISCOUNTS` (0.5, 1.0, 1.5), as KenLM's
    `--discount_fallback` does.

    Args:
        counts: int array [S], the count (raw or continuation) of every seen n-gram.

    Returns:
        (discounts, estimated): float64 [3] = (D1, D2, D3+), and False when the fallback was used.

    Example:
    n1, n2, n3, n4 = 4, 2, 1, 1, so Y = 0.5, D1 = 0.5, D2 = 2 - 1.5/2, D3+ = 3 - 2:
    >>> kneser_ney_discounts(np.array([1, 1, 1, 1, 2, 2, 3, 4]))[0].tolist()
    [0.5, 1.25, 1.0]
    """
    n = np.bincount(np.minimum(counts, 5), minlength=6).astype(np.float64)
    n1, n2, n3, n4 = n[1], n[2], n[3], n[4]
    if min(n1, n2, n3) == 0:
        return np.array(FALLBACK_DISCOUNTS), False
    y = n1 / (n1 + 2.0 * n2)
    discounts = np.array([1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3])
    if np.any(discounts <= 0) or np.any(discounts > np.array([1.0, 2.0, 3.0])):
        return np.array(FALLBACK_DISCOUNTS), False
    return discounts, True


def _sort_rows(keys):
    """argsort of `keys` and, for each unsorted entry, its row once sorted."""
    permutation = np.argsort(keys, kind="stable")
    rows = np.empty_like(permutation)
    rows[permutation] = np.arange(permutation.size)
    return permutation, rows


def kneser_ney_tables(tokens, order, vocabulary_size, bos_id):
    """Interpolated modified Kneser-Ney over a padded corpus, as collapsed backoff tables.

    The model (formulas in `NGramLM`) is computed in the position-id space of every order:
    counts (raw for the top order, continuation counts N1+(. g) below), discounts, gammas and
    the full interpolated probability of each seen n-gram, bottom-up. It is then written as
    backoff tables, exact for an interpolated model: a seen n-gram stores its full probability,
    a context stores its gamma as backoff weight (1 when it has no continuation).

    Collapsing sequence starts: a seen N-gram `<s>^a W w` (a >= 1 BOS, then the first |W|+1
    real tokens of a document) is stored as `<s> W w` at order |W| + 2, and the context `<s> W`
    gets backoff prod_{m=1}^{N-1-|W|} gamma(<s>^m W). This is exact for BOS-padded queries:
    whether `<s>^m W w` is seen does not depend on m (it is seen iff a document starts with
    W w), so the chain of BOS levels either ends in the stored probability or multiplies all
    their gammas before reaching P(w | W). Lower-order n-grams starting with BOS are only ever
    used inside that chain and are not stored.

    Args:
        tokens: int64 [M], the output of `pad_sequences` (N >= 2: starts with BOS).
        order: int N >= 1.
        vocabulary_size: int V >= 2.
        bos_id: int.

    Returns:
        dict with `keys`, `log_prob`, `log_backoff` (lists of N arrays, see `ngram_backoff`),
        `discounts` float64 [N, 3] (row k-1: order k), `discounts_estimated` bool [N],
        `unseen_log_prob` (float, ln of an unseen token's unigram probability).
    """
    v, n = vocabulary_size, order
    predicted = np.flatnonzero(tokens != bos_id)

    # ids[k][q]: id of the k-gram ending at position q. The corpus starts with BOS and the
    # window left of position 0 reads as more BOS, so all-BOS windows get consistent ids.
    ids, sizes = [None, tokens], [1, v]
    for k in range(2, n + 1):
        previous = ids[k - 1]
        shifted = np.concatenate([previous[:1], previous[:-1]]).astype(np.int64)
        unique_keys, inverse = np.unique(shifted * v + tokens, return_inverse=True)
        ids.append(inverse.reshape(-1).astype(np.int32 if unique_keys.size < 2**31 else np.int64))
        sizes.append(unique_keys.size)

    # seen[k]: ids of the k-grams ending at a predicted position; where[k]: one such position.
    seen, where = [None], [None]
    for k in range(1, n + 1):
        representative = np.full(sizes[k], -1, dtype=np.int64)
        representative[ids[k][predicted]] = predicted
        seen.append(np.flatnonzero(representative >= 0))
        where.append(representative[seen[k]])

    # Raw counts at the top order; below, N1+(. g) = number of distinct (k+1)-grams whose
    # last k tokens are g (each distinct (k+1)-gram contributes its suffix once).
    counts = [None] * (n + 1)
    counts[n] = np.bincount(ids[n][predicted], minlength=sizes[n])[seen[n]]
    for k in range(n - 1, 0, -1):
        counts[k] = np.bincount(ids[k][where[k + 1]], minlength=sizes[k])[seen[k]]

    discounts = np.zeros((n, 3))
    estimated = np.zeros(n, dtype=bool)
    gamma = [None] * (n + 2)  # gamma[k][context id of order k - 1]
    prob = [None] * (n + 1)  # prob[k][k-gram id], valid on seen[k]
    uniform = np.full(v, 1.0 / (v - 1))  # BOS is never predicted
    uniform[bos_id] = 0.0
    for k in range(1, n + 1):
        discounts[k - 1], estimated[k - 1] = kneser_ney_discounts(counts[k])
        count = counts[k].astype(np.float64)
        discount = np.concatenate([[0.0], discounts[k - 1]])[np.minimum(counts[k], 3)]
        if k == 1:
            context = np.zeros(seen[1].size, dtype=np.int64)
            lower = uniform[seen[1]]
        else:
            context = ids[k - 1][where[k] - 1]
            lower = prob[k - 1][ids[k - 1][where[k]]]
        total = np.bincount(context, weights=count, minlength=sizes[k - 1])
        # sum of the discounts over a context's words = D1 N1(h.) + D2 N2(h.) + D3+ N3+(h.)
        mass = np.bincount(context, weights=discount, minlength=sizes[k - 1])
        gamma[k] = np.ones(sizes[k - 1])
        nonzero = total > 0
        gamma[k][nonzero] = mass[nonzero] / total[nonzero]
        prob[k] = gamma[1][0] * uniform if k == 1 else np.full(sizes[k], np.nan)
        prob[k][seen[k]] = (count - discount) / total[context] + gamma[k][context] * lower

    with np.errstate(divide="ignore"):
        unigram_log_prob = np.log(prob[1])  # -inf for BOS
    keys, log_prob, log_backoff = [np.arange(v, dtype=np.int64)], [unigram_log_prob], []
    log_backoff.append(np.log(gamma[2]) if n >= 2 else np.zeros(v))
    entry_of = [None, np.arange(v, dtype=np.int64)]  # entry_of[k][k-gram id] -> table row

    if n >= 2:
        # Top-order n-grams that start with BOS, collapsed to one BOS (see docstring).
        top_positions = where[n]
        window = tokens[top_positions[:, None] + np.arange(-n + 1, 1)]  # [S, N]
        real = n - (window == bos_id).sum(axis=1)  # |W| + 1: BOS only occurs as padding
        starts = real < n
        start_ids, start_positions, start_real = (
            seen[n][starts],
            top_positions[starts],
            real[starts],
        )
        start_backoff = np.zeros(start_ids.size)
        for length in range(1, n):  # context <s>^m W of this length ends at the position
            use = start_real + 1 <= length
            start_backoff[use] += np.log(gamma[length + 1][ids[length][start_positions[use]]])
        log_backoff[0][bos_id] = sum(
            np.log(gamma[length + 1][ids[length][0]]) for length in range(1, n)
        )

    for k in range(2, n + 1):
        plain = tokens[where[k] - k + 1] != bos_id
        plain_ids, plain_positions = seen[k][plain], where[k][plain]
        collapsed = start_real == k - 1
        suffix_rows = np.concatenate(
            [
                entry_of[k - 1][ids[k - 1][plain_positions]],
                entry_of[k - 1][ids[k - 1][start_positions[collapsed]]],
            ]
        )
        first = np.concatenate(
            [tokens[plain_positions - k + 1], np.full(int(collapsed.sum()), bos_id)]
        )
        order_keys = suffix_rows * v + first
        order_log_prob = np.log(np.concatenate([prob[k][plain_ids], prob[n][start_ids[collapsed]]]))
        if k < n:
            order_log_backoff = np.concatenate(
                [np.log(gamma[k + 1][plain_ids]), start_backoff[collapsed]]
            )
        else:
            order_log_backoff = np.zeros(order_keys.size)
        permutation, rows = _sort_rows(order_keys)
        keys.append(order_keys[permutation])
        log_prob.append(order_log_prob[permutation])
        log_backoff.append(order_log_backoff[permutation])
        entry_of.append(np.full(sizes[k], -1, dtype=np.int64))
        entry_of[k][plain_ids] = rows[: plain_ids.size]

    return {
        "keys": keys,
        "log_prob": log_prob,
        "log_backoff": log_backoff,
        "discounts": discounts,
        "discounts_estimated": estimated,
        "unseen_log_prob": float(np.log(gamma[1][0] / (v - 1))),
    }
