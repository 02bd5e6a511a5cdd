"""N-gram language model with interpolated modified Kneser-Ney smoothing (numpy)."""

import json
import math
import os

import numpy as np

from keras_lm.models import ngram_arpa
from keras_lm.models.ngram_backoff import backoff_log_probs
from keras_lm.models.ngram_backoff import entry_keys
from keras_lm.models.ngram_backoff import entry_tokens
from keras_lm.models.ngram_counting import check_sequences
from keras_lm.models.ngram_counting import kneser_ney_tables
from keras_lm.models.ngram_counting import pad_sequences

_CONFIG_FILE = "ngram_lm.json"
_ARRAYS_FILE = "ngram_lm.npz"
_FORMAT = "keras_lm.NGramLM"
_CHUNK = 1 << 20  # positions scored at once (bounds the [chunk, N-1] context array)


class NGramLM:
    """N-gram language model with interpolated modified Kneser-Ney smoothing.

    A classic count-based baseline over integer token ids from any keras_lm tokenizer. Each
    document is padded with N-1 BOS at the start and one EOS at the end; every real token and
    the EOS is predicted, BOS never is (its probability is 0).

    Smoothing (Chen & Goodman 1998, "An Empirical Study of Smoothing Techniques for Language
    Modeling", section 3 and eq. 26). For order k, context h (k-1 tokens), token w, h' = h
    without its first token:

        P_k(w | h) = (c_k(hw) - D_k(c_k(hw))) / c_k(h.) + gamma_k(h) P_{k-1}(w | h')
                                                                   if c_k(h.) > 0,
        P_k(w | h) = P_{k-1}(w | h')                               otherwise,
        gamma_k(h) = (D_k1 N1(h.) + D_k2 N2(h.) + D_k3+ N3+(h.)) / c_k(h.),
        P_0(w)     = 1 / (V - 1) for w != BOS, 0 for BOS (uniform over the vocabulary).

    - c_N is the raw count of the N-gram in the padded corpus; for k < N, c_k(g) = N1+(. g) is
      the continuation count, the number of distinct tokens seen just before g (an n-gram
      starting with BOS has continuation count 1: only BOS precedes it).
    - c_k(h.) = sum_w c_k(hw); N_r(h.) = number of w with c_k(hw) = r (N3+: >= 3).
    - D_k(0) = 0, D_k(1) = D_k1, D_k(2) = D_k2, D_k(c >= 3) = D_k3+, estimated per order from
      the counts-of-counts n_r of c_k over the seen k-grams: Y = n1 / (n1 + 2 n2),
      D1 = 1 - 2Y n2/n1, D2 = 2 - 3Y n3/n2, D3+ = 3 - 4Y n4/n3.
    - Fallback: if n1, n2 or n3 is 0, or an estimate falls outside 0 < D_r <= r, that order
      uses D = (0.5, 1.0, 1.5) (KenLM's `--discount_fallback` defaults). `discounts_estimated`
      tells which orders did. So gamma_1 > 0 and every token but BOS, seen or not, has a
      nonzero probability in every context.

    The model is stored as backoff tables (a seen n-gram keeps its full interpolated
    probability, a context its gamma as backoff weight), which is exact, and is what `to_arpa`
    writes, with sequence starts written with a single `<s>` as in KenLM (see
    `ngram_counting.kneser_ney_tables`). KenLM scores the file exactly as this model does.

    Shapes: V = vocabulary_size, N = order, T = a sequence length.

    Args:
        order: int N >= 1, the n-gram order (1 = unigram).
        vocabulary_size: int V, ids lie in [0, V). Use the tokenizer's vocabulary size.
        bos_id: int, the begin-of-sequence id (padding, never predicted).
        eos_id: int, the end-of-sequence id (predicted once at the end of each document).
        unk_id: int or None, the tokenizer's unknown-token id, written as `<unk>` in ARPA
            files. With None, ARPA files get an extra `<unk>` scored like an unseen token.

    Example:
    >>> lm = NGramLM(order=3, vocabulary_size=6, bos_id=1, eos_id=2)
    >>> lm = lm.fit([np.array([3, 4, 5, 3, 4]), np.array([3, 4])])
    >>> p = lm.next_token_distribution([3])  # after "3" at a document start
    >>> bool(abs(p.sum() - 1) < 1e-9), int(p.argmax())
    (True, 4)

    References:
        Chen & Goodman, "An Empirical Study of Smoothing Techniques for Language Modeling",
        Harvard TR-10-98 (1998). Kneser & Ney, "Improved backing-off for m-gram language
        modeling", ICASSP 1995. ARPA format: SRILM `ngram-format(5)`.
    """

    def __init__(self, order, vocabulary_size, bos_id, eos_id, unk_id=None):
        if not isinstance(order, (int, np.integer)) or order < 1:
            raise ValueError(f"`order` must be an integer >= 1. Received: order={order!r}.")
        if not isinstance(vocabulary_size, (int, np.integer)) or vocabulary_size < 2:
            raise ValueError(
                "`vocabulary_size` must be an integer >= 2 (BOS, EOS and tokens). "
                f"Received: vocabulary_size={vocabulary_size!r}."
            )
        for name, value in (("bos_id", bos_id), ("eos_id", eos_id), ("unk_id", unk_id)):
            if value is None and name == "unk_id":
                continue
            if not isinstance(value, (int, np.integer)) or not 0 <= value < vocabulary_size:
                raise ValueError(
                    f"`{name}` must be an id in [0, vocabulary_size={vocabulary_size}). "
                    f"Received: {name}={value!r}."
                )
        if bos_id == eos_id or unk_id in (bos_id, eos_id):
            raise ValueError(
                "`bos_id`, `eos_id` and `unk_id` must be distinct (BOS is never predicted, "
                f"EOS is). Received: bos_id={bos_id}, eos_id={eos_id}, unk_id={unk_id}."
            )
        self.order = int(order)
        self.vocabulary_size = int(vocabulary_size)
        self.bos_id = int(bos_id)
        self.eos_id = int(eos_id)
        self.unk_id = None if unk_id is None else int(unk_id)
        self.discounts = None  # float64 [N, 3] after fit: (D1, D2, D3+) of order k in row k-1
        self.discounts_estimated = None  # bool [N]: False where the fallback was used
        self._tables = None  # (keys, log_prob, log_backoff), see ngram_backoff
        self._unseen_log_prob = None

    def fit(self, sequences):
        """Counts n-grams and estimates the model (replaces any previous fit).

        Args:
            sequences: list of 1-D int arrays, one per document, ids in [0, V), without BOS
                or a final EOS (the model adds them).

        Returns:
            self.
        """
        flat, lengths = check_sequences(sequences, self.vocabulary_size, self.bos_id)
        tokens = pad_sequences(flat, lengths, self.order, self.bos_id, self.eos_id)
        result = kneser_ney_tables(tokens, self.order, self.vocabulary_size, self.bos_id)
        self._tables = (result["keys"], result["log_prob"], result["log_backoff"])
        self._unseen_log_prob = result["unseen_log_prob"]
        self.discounts = result["discounts"]
        self.discounts_estimated = result["discounts_estimated"]
        return self

    @property
    def ngram_counts(self):
        """Number of stored n-grams per order (the ARPA `ngram k=` figures), a list of N ints."""
        keys, _, _ = self._require_fitted()
        return [int(k.size) for k in keys]

    @property
    def backoff_tables(self):
        """The fitted tables `(keys, log_prob, log_backoff)`, lists of N numpy arrays.

        The layout of `keras_lm.models.ngram_backoff` (sorted int64 keys, float64 natural-log
        probabilities and backoff weights per order). Read them, do not modify them; an
        exported graph holds a copy (`keras_lm.export.ngram_module`).
        """
        return self._require_fitted()

    def _require_fitted(self):
        if self._tables is None:
            raise RuntimeError(
                "This NGramLM has no counts yet. Call `fit(sequences)`, `NGramLM.load(...)` "
                "or `NGramLM.from_arpa(...)` first."
            )
        return self._tables

    def _check_ids(self, ids, name):
        try:
            array = np.asarray(ids)
        except (TypeError, ValueError) as error:
            raise ValueError(f"`{name}` must be a 1-D array of token ids.") from error
        if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
            raise ValueError(
                f"`{name}` must be a 1-D array of integer token ids. Received shape "
                f"{array.shape}, dtype {array.dtype}."
            )
        array = array.astype(np.int64)
        bad = array[(array < 0) | (array >= self.vocabulary_size)]
        if bad.size:
            raise ValueError(
                f"`{name}` holds id {int(bad[0])}, outside [0, vocabulary_size="
                f"{self.vocabulary_size}): the ids come from a vocabulary that does not match "
                "the model. Use the tokenizer the model was trained with."
            )
        return array

    def _padded_context(self, context):
        """The last N-1 ids of [BOS] * (N-1) + context: int64 [N-1]."""
        context = self._check_ids(context, "context")
        padded = np.concatenate([np.full(self.order - 1, self.bos_id, np.int64), context])
        return padded[padded.size - (self.order - 1) :]

    def log_prob(self, context, token):
        """Natural-log probability of `token` after `context`.

        Args:
            context: 1-D ids preceding `token` in its document, without BOS. Only the last
                N-1 matter; a shorter context is a document start (BOS-padded).
            token: int id in [0, V).

        Returns:
            float, ln P(token | context) (-inf for BOS).
        """
        tables = self._require_fitted()
        token = self._check_ids([token], "token")
        context = self._padded_context(context)
        return float(backoff_log_probs(*tables, context[None, :], token, self.vocabulary_size)[0])

    def next_token_distribution(self, context):
        """P(. | context) over the whole vocabulary, in one vectorised lookup.

        Args:
            context: 1-D ids, as in `log_prob`.

        Returns:
            float64 [V], sums to 1; 0 at BOS.
        """
        tables = self._require_fitted()
        context = self._padded_context(context)
        contexts = np.broadcast_to(context, (self.vocabulary_size, self.order - 1))
        words = np.arange(self.vocabulary_size, dtype=np.int64)
        return np.exp(backoff_log_probs(*tables, contexts, words, self.vocabulary_size))

    def _sequence_log_probs(self, sequences, name):
        """ln P of every predicted token (each document's tokens, then its EOS): float64 [L+D]."""
        tables = self._require_fitted()
        flat, lengths = check_sequences(sequences, self.vocabulary_size, self.bos_id, name)
        tokens = pad_sequences(flat, lengths, self.order, self.bos_id, self.eos_id)
        predicted = np.flatnonzero(tokens != self.bos_id)
        result = np.empty(predicted.size)
        for start in range(0, predicted.size, _CHUNK):
            positions = predicted[start : start + _CHUNK]
            # contexts[i, j] = tokens[positions[i] - (N-1) + j]; padding keeps this >= 0
            contexts = tokens[positions[:, None] + np.arange(-(self.order - 1), 0)]
            result[start : start + _CHUNK] = backoff_log_probs(
                *tables, contexts, tokens[positions], self.vocabulary_size
            )
        return result, lengths

    def token_log_probs(self, sequence):
        """Natural-log probability of each token of one document, then of its EOS.

        Args:
            sequence: 1-D ids [T], without BOS / EOS.

        Returns:
            float64 [T + 1].
        """
        return self._sequence_log_probs([sequence], "sequence")[0]

    def score(self, sequences):
        """Log-likelihood and perplexity of documents (each with its EOS, BOS-padded).

        Args:
            sequences: list of 1-D id arrays, one per document, without BOS / EOS.

        Returns:
            dict: `log_prob_sum` (float, natural log, over all predicted tokens), `tokens`
            (int, predicted tokens = total length + one EOS per document), `perplexity`
            (exp(-log_prob_sum / tokens)).
        """
        log_probs, _ = self._sequence_log_probs(sequences, "sequences")
        total = float(log_probs.sum())
        return {
            "log_prob_sum": total,
            "tokens": int(log_probs.size),
            "perplexity": float(math.exp(-total / log_probs.size)),
        }

    def generate(self, prompt_ids, max_new_tokens, temperature=1.0, seed=None, stop_ids=()):
        """Samples a continuation of a document start.

        Args:
            prompt_ids: 1-D ids [P] (may be empty), the start of a document, without BOS.
            max_new_tokens: int >= 0, the most tokens to add.
            temperature: float >= 0. Sampling uses P^(1/temperature), renormalised;
                0 = greedy (argmax, lowest id on ties).
            seed: int or None, seeds a `np.random.default_rng` (same seed, same output).
            stop_ids: ids that end generation; the stop id is kept as the last token. Pass
                `(eos_id,)` to stop at the end of a document.

        Returns:
            int32 [P + G], the prompt followed by the G <= max_new_tokens new ids.
        """
        self._require_fitted()
        prompt = self._check_ids(prompt_ids, "prompt_ids")
        if not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 0:
            raise ValueError(
                f"`max_new_tokens` must be an integer >= 0. Received: {max_new_tokens!r}."
            )
        if not temperature >= 0:
            raise ValueError(
                f"`temperature` must be >= 0 (0 = greedy). Received: temperature={temperature!r}."
            )
        stop = {int(i) for i in stop_ids}
        rng = np.random.default_rng(seed)
        history = int(self.order - 1)
        ids = [int(i) for i in prompt]
        for _ in range(int(max_new_tokens)):
            # The last N-1 ids (all of them while fewer: a document start, BOS-padded).
            context = ids[max(0, len(ids) - history) :]
            probs = self.next_token_distribution(np.array(context, np.int64))
            if temperature == 0:
                token = int(np.argmax(probs))
            else:
                with np.errstate(divide="ignore"):
                    logits = np.log(probs) / temperature
                weights = np.exp(logits - logits.max())
                token = int(rng.choice(self.vocabulary_size, p=weights / weights.sum()))
            ids.append(token)
            if token in stop:
                break
        return np.array(ids, dtype=np.int32)

    def _config(self):
        return {
            "format": _FORMAT,
            "version": 1,
            "order": self.order,
            "vocabulary_size": self.vocabulary_size,
            "bos_id": self.bos_id,
            "eos_id": self.eos_id,
            "unk_id": self.unk_id,
            "unseen_log_prob": self._unseen_log_prob,
        }

    @classmethod
    def _from_config(cls, config, vocabulary_size, source):
        if config.get("format") != _FORMAT:
            raise ValueError(f"{source} was not written by keras_lm NGramLM.")
        if vocabulary_size is not None and vocabulary_size != config["vocabulary_size"]:
            raise ValueError(
                f"{source} holds a model over vocabulary_size={config['vocabulary_size']}, but "
                f"`vocabulary_size`={vocabulary_size} was expected: it was trained with another "
                "vocabulary. Use the tokenizer it was trained with."
            )
        model = cls(
            config["order"],
            config["vocabulary_size"],
            config["bos_id"],
            config["eos_id"],
            config["unk_id"],
        )
        model._unseen_log_prob = config["unseen_log_prob"]
        return model

    def save(self, directory):
        """Writes `ngram_lm.json` (settings) and `ngram_lm.npz` (tables) into `directory`.

        Args:
            directory: str, created if needed.
        """
        keys, log_prob, log_backoff = self._require_fitted()
        os.makedirs(directory, exist_ok=True)
        config = self._config()
        config["discounts"] = self.discounts.tolist() if self.discounts is not None else None
        config["discounts_estimated"] = (
            self.discounts_estimated.tolist() if self.discounts_estimated is not None else None
        )
        with open(os.path.join(directory, _CONFIG_FILE), "w", encoding="utf-8") as file:
            json.dump(config, file, indent=2)
        arrays = {}
        for k in range(1, self.order + 1):
            arrays[f"keys_{k}"] = keys[k - 1]
            arrays[f"log_prob_{k}"] = log_prob[k - 1]
            arrays[f"log_backoff_{k}"] = log_backoff[k - 1]
        np.savez(os.path.join(directory, _ARRAYS_FILE), **arrays)

    @classmethod
    def load(cls, directory, vocabulary_size=None):
        """Reads a model written by `save`.

        Args:
            directory: str.
            vocabulary_size: int or None. If given, the model's must equal it (pass your
                tokenizer's, to catch a model trained on another vocabulary).

        Returns:
            NGramLM.
        """
        config_path = os.path.join(directory, _CONFIG_FILE)
        if not os.path.isfile(config_path):
            raise ValueError(
                f"`directory` {directory!r} holds no {_CONFIG_FILE}; write it with `save`."
            )
        with open(config_path, encoding="utf-8") as file:
            config = json.load(file)
        model = cls._from_config(config, vocabulary_size, f"`directory` {directory!r}")
        with np.load(os.path.join(directory, _ARRAYS_FILE)) as arrays:
            model._tables = tuple(
                [arrays[f"{name}_{k}"] for k in range(1, model.order + 1)]
                for name in ("keys", "log_prob", "log_backoff")
            )
        if config.get("discounts") is not None:
            model.discounts = np.array(config["discounts"])
            model.discounts_estimated = np.array(config["discounts_estimated"], dtype=bool)
        return model

    def to_arpa(self, path, id_to_token=None):
        """Writes the model as an ARPA backoff file (log10 values), readable by KenLM / SRILM.

        (KenLM loads orders >= 2 only: "This ngram implementation assumes at least a bigram
        model"; an order-1 file is still valid ARPA and `from_arpa` reads it.)

        A seen n-gram's probability is the full interpolated one and its backoff weight its
        gamma, so the file is exact. `<s>` gets log10 prob -99 (never predicted) and the
        backoff of the document start; with `unk_id=None`, an extra `<unk>` gets the
        probability of an unseen token, so KenLM scores out-of-vocabulary words as such (the
        file's 1-grams then sum to 1 + that probability; pass `unk_id` to avoid it).

        Args:
            path: str, the file to write.
            id_to_token: None (names `t<id>`), a callable id -> str or a sequence / mapping
                indexed by id (e.g. the tokenizer's vocabulary). Names are escaped
                (`ngram_arpa.escape_arpa_token`): whitespace becomes `\\uXXXX`. BOS, EOS and
                unk_id are always `<s>`, `</s>`, `<unk>`.
        """
        keys, log_prob, log_backoff = self._require_fitted()
        names = ngram_arpa.token_names(
            id_to_token, self.vocabulary_size, self.bos_id, self.eos_id, self.unk_id
        )
        log10 = math.log(10.0)
        log10_prob = [np.minimum(p, 0.0) / log10 for p in log_prob]
        log10_prob[0] = log10_prob[0].copy()
        log10_prob[0][self.bos_id] = ngram_arpa.LOG10_ZERO
        log10_backoff = [b / log10 for b in log_backoff]
        extra = []
        if self.unk_id is None:
            extra = [(ngram_arpa.UNK_NAME, self._unseen_log_prob / log10)]
        ngram_arpa.write_arpa(
            path,
            self._config(),
            names,
            entry_tokens(keys, self.vocabulary_size),
            log10_prob,
            log10_backoff,
            extra,
        )

    @classmethod
    def from_arpa(cls, path, id_to_token=None, vocabulary_size=None):
        """Reads a file written by `to_arpa` (same probabilities, to the file's 10 digits).

        Args:
            path: str.
            id_to_token: the mapping given to `to_arpa` (None for the default `t<id>` names).
            vocabulary_size: int or None, checked against the file's as in `load`.

        Returns:
            NGramLM (without `discounts`, which ARPA does not record).
        """
        header, grams = ngram_arpa.read_arpa(path)
        if header is None:
            raise ValueError(
                f"`path` {path!r} has no '{ngram_arpa.HEADER_PREFIX.strip()}' line: "
                "from_arpa reads files written by NGramLM.to_arpa."
            )
        model = cls._from_config(header, vocabulary_size, f"`path` {path!r}")
        if len(grams) != model.order:
            raise ValueError(
                f"`path` {path!r} holds {len(grams)} orders but its header says {model.order}."
            )
        v = model.vocabulary_size
        names = ngram_arpa.token_names(id_to_token, v, model.bos_id, model.eos_id, model.unk_id)
        id_of = {name: i for i, name in enumerate(names)}
        log10 = math.log(10.0)
        keys, log_prob, log_backoff = [], [], []
        for k, (words, probs, backoffs) in enumerate(grams, start=1):
            keep = list(range(len(words)))
            if k == 1 and model.unk_id is None:  # the extra <unk> names no id
                keep = [i for i in keep if words[i][0] != ngram_arpa.UNK_NAME]
            try:
                tokens = np.array([[id_of[t] for t in words[i]] for i in keep], np.int64)
            except KeyError as error:
                raise ValueError(
                    f"`path` {path!r} has token {error.args[0]!r}, which `id_to_token` does "
                    "not name. Pass the id_to_token used by to_arpa."
                ) from None
            tokens = tokens.reshape(len(keep), k)
            probs, backoffs = probs[keep] * log10, backoffs[keep] * log10
            if k == 1:
                if sorted(tokens[:, 0].tolist()) != list(range(v)):
                    raise ValueError(f"`path` {path!r} lacks 1-grams of some of the {v} ids.")
                order_keys = tokens[:, 0]
            else:
                order_keys, found = entry_keys(keys, tokens, v)
                if not found.all():
                    raise ValueError(f"`path` {path!r}: an n-gram's suffix is missing.")
            permutation = np.argsort(order_keys, kind="stable")
            keys.append(order_keys[permutation])
            log_prob.append(probs[permutation])
            log_backoff.append(backoffs[permutation])
        log_prob[0][model.bos_id] = -np.inf
        model._tables = (keys, log_prob, log_backoff)
        return model
