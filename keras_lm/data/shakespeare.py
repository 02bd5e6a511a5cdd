"""The shared Shakespeare corpus: works table, split documents and canonical text.

The corpus lives outside the repository (see `../shared/data/shakespeare/README.md`): 42 works in
modern spelling with a fixed, work-level split (validation: macbeth, much_ado_about_nothing,
richard_ii; test: hamlet, twelfth_night, henry_v; train: the other 36) and a `genre` label per
work. Nothing here invents another split: every function reads `works.tsv`.
"""

import csv
import os
import pathlib

SPLITS = ("train", "validation", "test")
SHAKESPEARE_DIR_ENV = "KERAS_LM_SHAKESPEARE_DIR"
# keras_lm/data/shakespeare.py -> parents[2] is the repository root; the shared data sits beside it.
_REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
_WORKS_COLUMNS = ("work", "title", "genre", "split", "modern_file", "folio_file", "modern_chars")


def shakespeare_dir(directory=None):
    """Resolves the directory of the Shakespeare corpus and checks that it is there.

    Args:
        directory: str or path, or None. None means the environment variable
            `KERAS_LM_SHAKESPEARE_DIR` if set, else `<repo root>/../shared/data/shakespeare`.

    Returns:
        A `pathlib.Path` to a directory holding `works.tsv`.

    Raises:
        FileNotFoundError: when `works.tsv` is not in the directory; the message names the path
            and how to point keras_lm at the corpus.

    Example:
    >>> shakespeare_dir()  # doctest: +SKIP
    PosixPath('/work/shared/data/shakespeare')
    """
    if directory is None:
        directory = os.environ.get(SHAKESPEARE_DIR_ENV) or (
            _REPO_ROOT.parent / "shared" / "data" / "shakespeare"
        )
    directory = pathlib.Path(directory).expanduser()
    if not (directory / "works.tsv").is_file():
        raise FileNotFoundError(
            f"Shakespeare corpus not found: no works.tsv in {str(directory)!r}. Set the "
            f"environment variable {SHAKESPEARE_DIR_ENV}=/path/to/shakespeare or use the source "
            "'shakespeare:/path/to/shakespeare' (the folder of the shared README, with works.tsv, "
            "modern/ and folio/)."
        )
    return directory


def _check_split(split):
    if split not in SPLITS:
        raise ValueError(
            f"Unknown split for the Shakespeare corpus: split={split!r}. "
            f"Valid splits: {', '.join(SPLITS)}."
        )


def shakespeare_works(split=None, directory=None):
    """Reads the rows of `works.tsv`, in file order.

    Args:
        split: None for all 42 works, or one of "train", "validation", "test".
        directory: the corpus directory; see `shakespeare_dir`.

    Returns:
        A list of dicts with keys `work`, `title`, `genre`, `split`, `modern_file`, `folio_file`
        (str; `folio_file` is "" where the Folio has no text) and `modern_chars` (int, the number
        of characters of the modern text).

    Example:
    >>> [w["work"] for w in shakespeare_works("test")]  # doctest: +SKIP
    ['hamlet', 'henry_v', 'twelfth_night']
    """
    if split is not None:
        _check_split(split)
    directory = shakespeare_dir(directory)
    with open(directory / "works.tsv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    missing = sorted(set(_WORKS_COLUMNS) - set(rows[0])) if rows else []
    if missing:
        raise ValueError(
            f"{directory / 'works.tsv'} lacks columns {missing}; "
            f"expected the columns {list(_WORKS_COLUMNS)}."
        )
    works = []
    for row in rows:
        row = {key: row[key] for key in _WORKS_COLUMNS}
        row["modern_chars"] = int(row["modern_chars"])
        if split is None or row["split"] == split:
            works.append(row)
    return works


def shakespeare_documents(split, directory=None):
    """The modern-spelling texts of one split, one document a work, in `works.tsv` order.

    Args:
        split: "train", "validation" or "test".
        directory: the corpus directory; see `shakespeare_dir`.

    Returns:
        A list of str, read as UTF-8 without newline translation.

    Example:
    >>> len(shakespeare_documents("validation"))  # doctest: +SKIP
    3
    """
    _check_split(split)
    directory = shakespeare_dir(directory)
    documents = []
    for work in shakespeare_works(split, directory):
        with open(directory / work["modern_file"], encoding="utf-8", newline="") as f:
            documents.append(f.read())
    return documents


def canonical_text(split, directory=None):
    """The README's canonical character-level corpus of one split.

    The `modern_file` texts of the split's works, in `works.tsv` order, joined with "\\n\\n".

    Args:
        split: "train", "validation" or "test".
        directory: the corpus directory; see `shakespeare_dir`.

    Returns:
        One str (train 4,259,608 characters, validation 356,078, test 441,590).

    Example:
    >>> vocabulary = sorted(set("".join(canonical_text(s) for s in SPLITS)))  # doctest: +SKIP
    """
    return "\n\n".join(shakespeare_documents(split, directory))
