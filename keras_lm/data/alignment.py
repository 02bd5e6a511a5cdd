"""Aligns two editions of one text into (source, target) segment pairs.

Built for the shared Shakespeare corpus, whose `folio/` (First Folio, 1623) and `modern/`
editions of a play are not aligned line by line: speech prefixes, stage directions, line
breaks, punctuation and spelling all differ, and either edition has passages the other lacks.

The method, for one play:

1. Clean each edition (`folio_speech_text`, `modern_speech_text`): drop speech prefixes,
   stage directions, act and scene headings; a speech boundary becomes a blank line.
2. Cut both texts into words (`tokenize_words`): lower-cased runs of letters and digits, with
   inner apostrophes and hyphens kept (`seru'd`, `to-night`), leading elisions kept (`'tis`),
   and `&` as a word (letters of any script count: `cæsar` is one word). Punctuation and
   case are dropped: the modern edition's punctuation and capitals are editorial, not
   spelling, and could not be predicted from the Folio. Every word
   records the boundary that follows it: 2 after sentence punctuation (`. ? ! ; :` or `--`), a
   blank line or the end of the text; 1 after a line break; 0 otherwise.
3. Align the two word sequences with `difflib.SequenceMatcher` on a spelling key
   (`spelling_key`: `u/v`, `i/j/y`, doubled letters, a final `e`, `&` = `and`, `æ` = `ae`),
   so that most spelling variants (`vnfold`/`unfold`, `seene`/`seen`) already count as equal.
4. Cut the alignment into segments (`segment_alignment`) only where both texts have a
   boundary: after a pair of words aligned as equal, or after a whole unmatched stretch (one
   is never split). A segment ends at the first such point with boundary 2 on both sides,
   unless the segment would then be longer than `max_chars`; then it ends at the last
   boundary-1 point that keeps it within `max_chars`. (A passage one edition lacks thus
   usually becomes a segment of its own, dropped for having no words on the other side.)
5. Keep a segment (the stated drop rule) if and only if
   a. both sides have at least `min_words` words and at most `max_chars` characters,
   b. no unmatched stretch (a `replace`, `insert` or `delete` opcode) inside it has more than
      `max_gap` words on either side, and
   c. at least `min_equal` of the longer side's words are matched: aligned as equal, or
      inside a replaced stretch whose two sides are spelled alike (difflib character ratio
      >= 0.6 between the stretches' spelling keys joined without spaces, so that
      `your selfe` / `yourself` and `releefe` / `relief` match but `iust` / `jump` does not).

Rule (b) drops segments that contain text one edition lacks (cuts, additions, leftover stage
directions); rule (c) drops segments where the editions reword rather than respell. The
resulting pairs are lower-case word sequences joined by single spaces.
"""

import collections
import dataclasses
import difflib
import re
import unicodedata

# Letters and digits of any script (`[^\W_]`), so that the Folio's `Cæsar` stays one word.
_WORD = re.compile(r"'?[^\W_]+(?:['\-][^\W_]+)*'?|&")
_SENTENCE_END = re.compile(r"[.?!;:]|--")
# Words that start with an elision apostrophe: 'tis, 'twas, 'twixt, 'em, 'gainst, ...; any
# other leading apostrophe is an opening quotation mark.
_LEADING_ELISION = re.compile(
    r"(?:tis$|tw|em$|gainst$|mongst$|fore$|pon$|bout$|scape|a$|s$|d$|ll$|sblood|zounds|"
    r"sdeath|faith$|prentice)"
)
# Folio: an indented line opening with a speech prefix of one to three words ("  Bar.",
# "  Sir To.", "  1. Clo."), then the speech.
_FOLIO_PREFIX = re.compile(r"^[ \t]+(?:[A-Z0-9][\w'&]*\.? ?){1,3}?\.(?=\s|$)")
_FOLIO_DIRECTION = re.compile(
    r"^(?:Enter|Exit|Exeunt|Manet|Manent|Flourish|Alarum|Sennet|Actus|Act|Scena|Scaena|"
    r"Scoena|Scene|Finis|FINIS|The Tragedie|The Life|The Historie|The Famous|The Second|"
    r"The Third|The First|The Merry|The Comedie|The Winters|The Tempest|The Two)\b"
)
# Modern: a speech prefix alone on a line after a blank line ("Ber.", "FIRST CLOWN.").
_MODERN_PREFIX = re.compile(r"^[A-Z][\w' &-]{0,30}\.$")
_MODERN_HEADING = re.compile(r"^(?:ACT|SCENE|Scene|PROLOGUE|EPILOGUE|Prologue|Epilogue)\b")


@dataclasses.dataclass(frozen=True)
class Word:
    """One word of a text: its lower-case form and the boundary strength after it (0, 1, 2)."""

    text: str
    boundary: int


def tokenize_words(text):
    """Cuts a text into lower-case words, each with the boundary that follows it.

    Args:
        text: str.

    Returns:
        A list of `Word`: boundary 2 after sentence punctuation (`. ? ! ; :`, `--`), a blank
        line or the end of the text; 1 after a single line break; 0 otherwise.

    Example:
    >>> [(w.text, w.boundary) for w in tokenize_words("Stand & vnfold\\nyour selfe. Who?")]
    [('stand', 0), ('&', 0), ('vnfold', 1), ('your', 0), ('selfe', 2), ('who', 2)]
    """
    # NFC first: a decomposed "é" (e + combining accent) would otherwise split its word.
    lowered = unicodedata.normalize("NFC", text).lower()
    matches = list(_WORD.finditer(lowered))
    words = []
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(lowered)
        gap = lowered[match.end():end]
        if index + 1 == len(matches) or _SENTENCE_END.search(gap) or gap.count("\n") >= 2:
            boundary = 2
        elif "\n" in gap:
            boundary = 1
        else:
            boundary = 0
        words.append(Word(_strip_quotes(match.group(0)), boundary))
    return words


def _strip_quotes(word):
    """Keeps an apostrophe at a word's edge only where it marks an elision, not a quote."""
    if word.startswith("'") and not _LEADING_ELISION.match(word[1:]):
        word = word[1:]
    if word.endswith("'") and len(word) > 1:
        stem = word[:-1]
        if len(stem.replace("'", "")) > 3 and not stem.endswith("th"):
            word = stem  # a closing quote or a plural possessive, not "th'", "o'", "i'th'"
    return word or "'"


def spelling_key(word):
    """A coarse spelling-insensitive key under which most Folio and modern spellings agree.

    Lower-case; apostrophes and hyphens removed; `&` -> `and`; `æ`, `œ` -> `ae`, `oe`;
    `v` -> `u`; `j`, `y` -> `i`;
    doubled letters collapsed; a final `e` dropped from words longer than two letters.
    Used only to align, never to produce text.

    Example:
    >>> spelling_key("Vnfold") == spelling_key("unfold"), spelling_key("seene")
    (True, 'sen')
    """
    key = word.lower().replace("'", "").replace("-", "")
    if key == "&":
        return "and"
    key = key.replace("æ", "ae").replace("œ", "oe")
    key = key.replace("v", "u").replace("j", "i").replace("y", "i")
    key = re.sub(r"(.)\1+", r"\1", key)
    if len(key) > 2 and key.endswith("e"):
        key = key[:-1]
    return key


@dataclasses.dataclass(frozen=True)
class Segment:
    """A span of the alignment: source words [i0, i1), target words [j0, j1), and the opcodes
    (tag, i1, i2, j1, j2) of `difflib` clipped to it."""

    i0: int
    i1: int
    j0: int
    j1: int
    opcodes: tuple


def segment_alignment(source_words, target_words, opcodes, max_chars):
    """Cuts an alignment into segments at shared boundaries (step 4 of the module docstring).

    Args:
        source_words, target_words: lists of `Word`.
        opcodes: `difflib.SequenceMatcher(...).get_opcodes()` over the two word lists.
        max_chars: int, the longest segment side (words joined by single spaces) preferred.

    Returns:
        A list of `Segment` covering both sequences completely, in order.
    """
    # Candidate cut points: after an equal pair (i, j), or after a whole unmatched stretch,
    # where the last word on both sides ends at a boundary (strength = the weaker of the two).
    # An unmatched stretch is never split: it stays inside one segment.
    def boundary(words, end):  # the boundary before position `end`; the text start is one
        return words[end - 1].boundary if end > 0 else 2

    cuts = []
    for tag, a0, a1, b0, b1 in opcodes:
        ends = [(a0 + k + 1, b0 + k + 1) for k in range(a1 - a0)] if tag == "equal" else [(a1, b1)]
        for i, j in ends:
            strength = min(boundary(source_words, i), boundary(target_words, j))
            if strength:
                cuts.append((i, j, strength))
    end = (len(source_words), len(target_words), 2)
    if not cuts or cuts[-1][:2] != end[:2]:
        cuts.append(end)

    source_ends = _prefix_chars(source_words)
    target_ends = _prefix_chars(target_words)

    def length(start, stop, ends):  # characters of words[start:stop] joined by spaces
        return ends[stop] - ends[start] - 1 if stop > start else 0

    bounds = []
    start_i, start_j, k = 0, 0, 0
    while k < len(cuts):
        last_fitting = None
        chosen = None
        for m in range(k, len(cuts)):
            i, j, strength = cuts[m]
            fits = (length(start_i, i, source_ends) <= max_chars
                    and length(start_j, j, target_ends) <= max_chars)
            if fits and strength == 2:
                chosen = m
                break
            if fits:
                last_fitting = m
            else:
                chosen = last_fitting if last_fitting is not None else m
                break
        if chosen is None:  # ran out of cuts while fitting: end at the last one
            chosen = len(cuts) - 1
        i, j, _ = cuts[chosen]
        bounds.append((start_i, i, start_j, j))
        start_i, start_j, k = i, j, chosen + 1
    return [Segment(i0, i1, j0, j1, _clip(opcodes, i0, i1, j0, j1))
            for i0, i1, j0, j1 in bounds]


def _prefix_chars(words):
    """ends[k] = characters of words[:k] joined by spaces, plus k (one space after each)."""
    ends = [0]
    for word in words:
        ends.append(ends[-1] + len(word.text) + 1)
    return ends


def _clip(opcodes, i0, i1, j0, j1):
    clipped = []
    for tag, a0, a1, b0, b1 in opcodes:
        if a1 <= i0 and b1 <= j0:
            continue
        if a0 >= i1 and b0 >= j1:
            break
        if tag == "equal":
            # Cuts lie on the diagonal of an equal block, so clipping the source range
            # clips the target range by the same amount.
            lo, hi = max(a0, i0), min(a1, i1)
            if hi > lo:
                clipped.append(("equal", lo, hi, b0 + (lo - a0), b0 + (hi - a0)))
        else:
            clipped.append((tag, max(a0, i0), min(a1, i1), max(b0, j0), min(b1, j1)))
    return tuple(clipped)


def keep_segment(segment, source_words, target_words, max_chars=100, min_words=3, max_gap=2,
                 min_equal=0.75):
    """The drop rule (step 5 of the module docstring): None if kept, else the reason.

    Returns:
        None for a kept segment, or one of "length", "gap", "equal_fraction".
    """
    source = source_words[segment.i0:segment.i1]
    target = target_words[segment.j0:segment.j1]
    chars = max(len(" ".join(w.text for w in source)), len(" ".join(w.text for w in target)))
    if min(len(source), len(target)) < min_words or chars > max_chars:
        return "length"
    matched = 0
    for tag, a0, a1, b0, b1 in segment.opcodes:
        if tag == "equal":
            matched += a1 - a0
        elif max(a1 - a0, b1 - b0) > max_gap:
            return "gap"
        elif tag == "replace" and respelled(source_words[a0:a1], target_words[b0:b1]):
            matched += max(a1 - a0, b1 - b0)
    if matched < min_equal * max(len(source), len(target)):
        return "equal_fraction"
    return None


def respelled(source_words, target_words, threshold=0.6):
    """Whether two unmatched stretches are one text spelled two ways (rule c).

    Example:
    >>> respelled(tokenize_words("your selfe"), tokenize_words("yourself"))
    True
    """
    source = "".join(spelling_key(w.text) for w in source_words)
    target = "".join(spelling_key(w.text) for w in target_words)
    return difflib.SequenceMatcher(None, source, target).ratio() >= threshold


def align_texts(source_text, target_text, max_chars=100, min_words=3, max_gap=2,
                min_equal=0.75):
    """Aligned (source, target) pairs of two editions of one text, and statistics.

    Args:
        source_text, target_text: the two editions (already cleaned of non-text material such
            as speech prefixes; see `folio_speech_text` / `modern_speech_text`).
        max_chars: int, longest side of a pair in characters (the segments aim below it; longer
            ones are dropped).
        min_words: int, fewest words on each side of a kept pair.
        max_gap: int, largest unmatched stretch (words on one side) a kept pair may contain.
        min_equal: float in [0, 1], least fraction of the longer side's words aligned as equal.

    Returns:
        `(pairs, stats)`: pairs is a list of (source, target) str, lower-case words joined by
        single spaces; stats a `collections.Counter` with `source_words`, `target_words`,
        `equal_words` (aligned as equal by difflib), `segments`, `kept`, the dropped counts
        `dropped_length`, `dropped_gap`, `dropped_equal_fraction`, and `kept_source_words`,
        `kept_target_words`.

    Example:
    >>> pairs, stats = align_texts("Long liue the King.\\n", "Long live the king!\\n")
    >>> pairs
    [('long liue the king', 'long live the king')]
    """
    if not 0.0 <= min_equal <= 1.0:
        raise ValueError(f"`min_equal` must be in [0, 1]. Received: min_equal={min_equal!r}")
    for name, value in (("max_chars", max_chars), ("min_words", min_words),
                        ("max_gap", max_gap)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"`{name}` must be an int >= 0. Received: {name}={value!r}")
    source_words = tokenize_words(source_text)
    target_words = tokenize_words(target_text)
    stats = collections.Counter(source_words=len(source_words), target_words=len(target_words))
    if not source_words or not target_words:
        return [], stats
    matcher = difflib.SequenceMatcher(
        None, [spelling_key(w.text) for w in source_words],
        [spelling_key(w.text) for w in target_words],
    )
    opcodes = matcher.get_opcodes()
    stats["equal_words"] = sum(a1 - a0 for tag, a0, a1, _, _ in opcodes if tag == "equal")
    pairs = []
    for segment in segment_alignment(source_words, target_words, opcodes, max_chars):
        stats["segments"] += 1
        reason = keep_segment(segment, source_words, target_words, max_chars, min_words,
                              max_gap, min_equal)
        if reason is not None:
            stats[f"dropped_{reason}"] += 1
            continue
        stats["kept"] += 1
        stats["kept_source_words"] += segment.i1 - segment.i0
        stats["kept_target_words"] += segment.j1 - segment.j0
        pairs.append((
            " ".join(w.text for w in source_words[segment.i0:segment.i1]),
            " ".join(w.text for w in target_words[segment.j0:segment.j1]),
        ))
    return pairs, stats


def folio_speech_text(text):
    """The spoken text of a First Folio play: speech prefixes, stage directions and headings
    removed; every speech starts after a blank line.

    Example:
    >>> folio_speech_text("Enter Barnardo.\\n\\n  Barnardo. Who's there?\\n  Fran. Nay")
    "\\n\\n\\n\\nWho's there?\\n\\n\\nNay"
    """
    lines = []
    for line in text.split("\n"):
        if _FOLIO_DIRECTION.match(line):
            lines.append("")
            continue
        prefix = _FOLIO_PREFIX.match(line)
        if prefix:
            line = "\n\n" + line[prefix.end():].lstrip()
        lines.append(line)
    return "\n".join(lines)


def modern_speech_text(text):
    """The spoken text of a modern-spelling play: [stage directions], act/scene headings and
    speech-prefix lines removed; every speech starts after a blank line.

    Example:
    >>> modern_speech_text("Ber.\\nWho's there?\\n\\n[Exit.]\\nFran.\\nNay.")
    "\\n\\nWho's there?\\n\\n\\n\\n\\n\\n\\nNay."
    """
    text = re.sub(r"\[[^\]]*\]", "\n\n", text)
    lines = []
    after_blank = True
    for line in text.split("\n"):
        stripped = line.strip()
        if _MODERN_HEADING.match(stripped):
            lines.append("\n")
            after_blank = True
            continue
        if after_blank and _MODERN_PREFIX.match(stripped):
            lines.append("\n")  # the prefix line; the speech follows on the next line
            after_blank = False
            continue
        after_blank = not stripped
        lines.append(line)
    return "\n".join(lines)


def align_folio_modern(folio_text, modern_text, **options):
    """`align_texts` of a play's cleaned Folio text (source) and modern text (target).

    Args:
        folio_text, modern_text: the raw files of one play from the Shakespeare corpus.
        **options: `max_chars`, `min_words`, `max_gap`, `min_equal` of `align_texts`.

    Returns:
        `(pairs, stats)` as for `align_texts`.
    """
    return align_texts(folio_speech_text(folio_text), modern_speech_text(modern_text), **options)
