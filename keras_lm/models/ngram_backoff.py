"""Backoff tables of `NGramLM`: layout, lookup and vectorised scoring (plain functions).

Layout (orders k = 1..N, lists indexed k - 1):
    keys[k-1]: int64 [S_k], sorted. Row r of order k is the n-gram `w_1 w_2 .. w_k`, keyed
        "reversed" by its first token and the row of its suffix `w_2 .. w_k` at order k - 1:
        key = row(w_2 .. w_k) * V + w_1. Order 1 has every id, row = key = id.
    log_prob[k-1]: float64 [S_k], ln P(w_k | w_1 .. w_{k-1}), the full (interpolated) probability.
    log_backoff[k-1]: float64 [S_k], ln of the backoff weight of `w_1 .. w_k` as a context
        (0 at the top order and for n-grams that are never a context).
Every stored n-gram's suffix is stored too, so a query walks the suffix chain one order at a
time with `np.searchsorted`, in O(N) vectorised lookups.

Query (the ARPA / KenLM backoff rule): for a context c_1 .. c_{N-1} and a token w,
    P(w | c_1 .. c_{N-1}) = P_stored(c_i .. c_{N-1} w) * prod_{j < i} B(c_j .. c_{N-1}),
where c_i .. c_{N-1} w is the longest stored suffix and B is the stored backoff weight of a
context suffix, 1 when that suffix is not stored.
"""

import numpy as np


def lookup(keys, query):
    """Rows of `query` in the sorted `keys`.

    Args:
        keys: int64 [S], sorted.
        query: int64 [B].

    Returns:
        (found, rows): bool [B], int64 [B] (rows are clipped into range where not found).
    """
    if keys.size == 0:
        return np.zeros(query.shape, dtype=bool), np.zeros(query.shape, dtype=np.int64)
    rows = np.minimum(np.searchsorted(keys, query), keys.size - 1)
    return keys[rows] == query, rows


def _gather(values, rows, found, default):
    """values[rows] where found, else default (values may be empty: nothing is found then)."""
    if values.size == 0:
        return np.full(rows.shape, default)
    return np.where(found, values[rows], default)


def backoff_log_probs(keys, log_prob, log_backoff, contexts, words, vocabulary_size):
    """ln P(word | context) for a batch, by the backoff rule of the module docstring.

    Args:
        keys, log_prob, log_backoff: the tables (lists of N arrays).
        contexts: int64 [B, N-1], the last N-1 ids before each word (BOS-padded).
        words: int64 [B].
        vocabulary_size: int V.

    Returns:
        float64 [B], natural-log probabilities (-inf for BOS, which is never predicted).
    """
    order = len(keys)
    result = log_prob[0][words]
    if order == 1:
        return result
    word_found = np.ones(words.shape, dtype=bool)
    word_rows = words
    context_found = np.ones(words.shape, dtype=bool)
    context_rows = contexts[:, -1]  # row of the context suffix of length 1 (an id)
    for k in range(2, order + 1):
        backoff = _gather(log_backoff[k - 2], context_rows, context_found, 0.0)
        # the k-gram c_{N-k+1} .. c_{N-1} w, keyed by its first token and its suffix's row
        found, rows = lookup(keys[k - 1], word_rows * vocabulary_size + contexts[:, -(k - 1)])
        word_found &= found
        word_rows = rows
        stored = _gather(log_prob[k - 1], rows, word_found, 0.0)
        result = np.where(word_found, stored, backoff + result)
        if k < order:  # extend the context suffix to length k
            found, rows = lookup(keys[k - 1], context_rows * vocabulary_size + contexts[:, -k])
            context_found &= found
            context_rows = rows
    return result


def entry_tokens(keys, vocabulary_size):
    """The ids of every stored n-gram.

    Args:
        keys: list of N sorted int64 arrays (the tables' keys).
        vocabulary_size: int V.

    Returns:
        list of N int64 arrays, [S_k, k] for order k, in table row order.
    """
    tokens = [keys[0][:, None]]
    for k in range(2, len(keys) + 1):
        suffix_rows, first = np.divmod(keys[k - 1], vocabulary_size)
        tokens.append(np.concatenate([first[:, None], tokens[k - 2][suffix_rows]], axis=1))
    return tokens


def entry_keys(keys, tokens, vocabulary_size):
    """Reversed keys of n-grams of one order, given the tables of the lower orders.

    Args:
        keys: list of the sorted key arrays of orders 1 .. k-1.
        tokens: int64 [S, k], the n-grams' ids.
        vocabulary_size: int V.

    Returns:
        (keys, found): int64 [S]; bool [S], False where a suffix is not in the lower tables.
    """
    k = tokens.shape[1]
    rows = tokens[:, -1]
    found = np.ones(tokens.shape[0], dtype=bool)
    for column in range(k - 2, 0, -1):  # suffix tokens[:, column:], of length k - column
        column_found, rows = lookup(
            keys[k - column - 1], rows * vocabulary_size + tokens[:, column]
        )
        found &= column_found
    return rows * vocabulary_size + tokens[:, 0], found
