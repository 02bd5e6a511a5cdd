"""ARPA text format for `NGramLM` (plain functions): token names, writing, reading.

An ARPA file lists, per order, `log10 P<TAB>w_1 .. w_k[<TAB>log10 backoff]` between a
`\\data\\` header of n-gram counts and `\\end\\`. Words are separated by whitespace, so token
names must not contain any: `escape_arpa_token` writes whitespace, control characters and the
backslash as `\\uXXXX`. Lines starting with `#` before `\\data\\` are comments (KenLM accepts
them); `NGramLM` keeps its settings there as one JSON line, `# keras_lm.NGramLM {...}`.
"""

import json
import re
import unicodedata

import numpy as np

HEADER_PREFIX = "# keras_lm.NGramLM "
BOS_NAME, EOS_NAME, UNK_NAME = "<s>", "</s>", "<unk>"
# log10 probability written for "never" (BOS): the convention of SRILM and KenLM.
LOG10_ZERO = -99.0


def escape_arpa_token(text):
    """Escapes whitespace, control characters and `\\` as `\\uXXXX`.

    Example:
    >>> escape_arpa_token("a b\\n")
    'a\\\\u0020b\\\\u000a'
    """

    def needs_escape(character):
        return (
            character.isspace()
            or character == "\\"
            or unicodedata.category(character) in ("Cc", "Zl", "Zp")
        )

    return "".join(f"\\u{ord(c):04x}" if needs_escape(c) else c for c in text)


def unescape_arpa_token(text):
    """Inverse of `escape_arpa_token`."""
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda match: chr(int(match.group(1), 16)), text)


def token_names(id_to_token, vocabulary_size, bos_id, eos_id, unk_id):
    """ARPA names of all ids: `<s>`, `</s>`, `<unk>` for the special ids, escaped names else.

    Args:
        id_to_token: None (names `t<id>`, e.g. `t17`), a callable id -> str, or a sequence /
            mapping indexed by id.
        vocabulary_size: int V.
        bos_id, eos_id: ints; unk_id: int or None.

    Returns:
        list of V distinct str, whitespace-free.
    """
    special = {bos_id: BOS_NAME, eos_id: EOS_NAME}
    if unk_id is not None:
        special[unk_id] = UNK_NAME
    names = []
    for i in range(vocabulary_size):
        if i in special:
            names.append(special[i])
            continue
        if id_to_token is None:
            names.append(f"t{i}")
            continue
        raw = id_to_token(i) if callable(id_to_token) else id_to_token[i]
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", errors="backslashreplace")
        name = escape_arpa_token(str(raw))
        if not name:
            raise ValueError(
                f"`id_to_token` maps id {i} to an empty string, which ARPA cannot write. "
                "Give every id a non-empty name."
            )
        if name in (BOS_NAME, EOS_NAME, UNK_NAME):
            raise ValueError(
                f"`id_to_token` maps id {i} to {name!r}, which ARPA reserves for bos_id, "
                "eos_id or unk_id. Build the model with that id as the special id, or rename it."
            )
        names.append(name)
    if len(set(names)) != len(names):
        seen = {}
        for i, name in enumerate(names):
            if name in seen:
                raise ValueError(
                    f"`id_to_token` maps ids {seen[name]} and {i} to the same name {name!r}. "
                    "ARPA needs one distinct name per id."
                )
            seen[name] = i
    return names


def _format(values):
    return [f"{x:.10g}" for x in values.tolist()]


def write_arpa(path, header, names, tokens, log10_prob, log10_backoff, extra_unigrams=()):
    """Writes an ARPA file.

    Args:
        path: str, the file to write.
        header: dict, written as the JSON comment line.
        names: list of V str, the name of each id.
        tokens: list of N int arrays [S_k, k].
        log10_prob, log10_backoff: lists of N float arrays [S_k].
        extra_unigrams: (name, log10 prob) pairs appended to the 1-grams.
    """
    order = len(tokens)
    name_array = np.array(names, dtype=object)
    with open(path, "w", encoding="utf-8") as file:
        file.write(HEADER_PREFIX + json.dumps(header, sort_keys=True) + "\n\\data\\\n")
        for k in range(1, order + 1):
            extra = len(extra_unigrams) if k == 1 else 0
            file.write(f"ngram {k}={tokens[k - 1].shape[0] + extra}\n")
        for k in range(1, order + 1):
            file.write(f"\n\\{k}-grams:\n")
            words = name_array[tokens[k - 1][:, 0]]
            for column in range(1, k):
                words = words + " " + name_array[tokens[k - 1][:, column]]
            probs = _format(log10_prob[k - 1])
            if k < order:
                backoffs = _format(log10_backoff[k - 1])
                lines = [f"{p}\t{w}\t{b}\n" for p, w, b in zip(probs, words.tolist(), backoffs)]
            else:
                lines = [f"{p}\t{w}\n" for p, w in zip(probs, words.tolist())]
            if k == 1:
                lines += [f"{p:.10g}\t{w}\n" for w, p in extra_unigrams]
            file.writelines(lines)
        file.write("\n\\end\\\n")


def read_arpa(path):
    """Reads an ARPA file.

    Args:
        path: str.

    Returns:
        (header, grams): header is the dict of the `# keras_lm.NGramLM` line (None if absent);
        grams is a list of N (words, log10_prob, log10_backoff) with words a list of k-tuples
        of str and float64 [S_k] arrays (backoff 0 where absent).
    """
    header = None
    with open(path, encoding="utf-8") as file:
        lines = iter(file)
        for line in lines:
            line = line.strip()
            if line.startswith(HEADER_PREFIX.strip()):
                header = json.loads(line[len(HEADER_PREFIX.strip()) :])
            if line == "\\data\\":
                break
        else:
            raise ValueError(f"`path` {path!r} is not an ARPA file: no \\data\\ line.")
        declared = []
        for line in lines:
            line = line.strip()
            if not line:
                if declared:
                    break
                continue
            match = re.fullmatch(r"ngram\s+(\d+)\s*=\s*(\d+)", line)
            if not match or int(match.group(1)) != len(declared) + 1:
                raise ValueError(f"`path` {path!r}: unexpected line {line!r} in \\data\\.")
            declared.append(int(match.group(2)))
        grams = []
        k = 0
        words, probs, backoffs = [], [], []
        for line in lines:
            line = line.strip()
            if not line:
                continue
            if line.startswith("\\"):
                if k:
                    grams.append((words, np.array(probs), np.array(backoffs)))
                if line == "\\end\\":
                    break
                match = re.fullmatch(r"\\(\d+)-grams:", line)
                if not match or int(match.group(1)) != k + 1:
                    raise ValueError(f"`path` {path!r}: unexpected section line {line!r}.")
                k += 1
                words, probs, backoffs = [], [], []
                continue
            fields = line.split()
            if len(fields) not in (k + 1, k + 2):
                raise ValueError(f"`path` {path!r}: malformed {k}-gram line {line!r}.")
            probs.append(float(fields[0]))
            words.append(tuple(fields[1 : k + 1]))
            backoffs.append(float(fields[k + 1]) if len(fields) == k + 2 else 0.0)
    if [len(g[0]) for g in grams] != declared:
        raise ValueError(
            f"`path` {path!r}: the sections hold {[len(g[0]) for g in grams]} n-grams but "
            f"\\data\\ declares {declared} (truncated file?)."
        )
    return header, grams
