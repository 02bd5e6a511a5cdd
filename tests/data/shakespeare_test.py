import csv

import pytest

from keras_lm.data import canonical_text
from keras_lm.data import corpus_statistics
from keras_lm.data import lm_dataset
from keras_lm.data import load_documents
from keras_lm.data import shakespeare_dir as resolve_shakespeare_dir
from keras_lm.data import shakespeare_documents
from keras_lm.data import shakespeare_works
from keras_lm.data import SPLITS
from keras_lm.data import text_dataset
from keras_lm.tokenizers import CharTokenizer

# The fixed split of ../shared/data/shakespeare/README.md.
README_SPLITS = {
    "test": {"hamlet", "twelfth_night", "henry_v"},
    "validation": {"macbeth", "much_ado_about_nothing", "richard_ii"},
}


def _read(path):
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def test_works_table_and_readme_splits(shakespeare_dir):
    works = shakespeare_works(directory=shakespeare_dir)
    assert len(works) == 42
    for split, names in README_SPLITS.items():
        assert {w["work"] for w in shakespeare_works(split, shakespeare_dir)} == names
    train = shakespeare_works("train", shakespeare_dir)
    assert len(train) == 36
    assert not {w["work"] for w in train} & set.union(*README_SPLITS.values())
    assert {w["genre"] for w in works} == {"comedy", "history", "tragedy", "poetry"}
    # Rows come in works.tsv order, read independently here with csv.
    with open(shakespeare_dir / "works.tsv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert [w["work"] for w in works] == [r["work"] for r in rows]
    assert all(isinstance(w["modern_chars"], int) for w in works)


@pytest.mark.parametrize("split", ["validation", "test"])
def test_documents_and_canonical_text(shakespeare_dir, split):
    works = shakespeare_works(split, shakespeare_dir)
    documents = shakespeare_documents(split, shakespeare_dir)
    expected = [_read(shakespeare_dir / w["modern_file"]) for w in works]
    assert documents == expected
    assert [len(d) for d in documents] == [w["modern_chars"] for w in works]
    assert canonical_text(split, shakespeare_dir) == "\n\n".join(expected)
    # The source strings give the same documents.
    assert load_documents(f"shakespeare:{shakespeare_dir}", split) == expected
    assert len(list(text_dataset(f"shakespeare:{shakespeare_dir}", split))) == len(works)


def test_default_directory_and_environment(shakespeare_dir, monkeypatch, tmp_path):
    monkeypatch.delenv("KERAS_LM_SHAKESPEARE_DIR", raising=False)
    # The default: <repo root>/../shared/data/shakespeare.
    assert resolve_shakespeare_dir().samefile(shakespeare_dir)
    monkeypatch.setenv("KERAS_LM_SHAKESPEARE_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}.*KERAS_LM_SHAKESPEARE_DIR"):
        load_documents("shakespeare", "test")
    monkeypatch.setenv("KERAS_LM_SHAKESPEARE_DIR", str(shakespeare_dir))
    assert len(load_documents("shakespeare", "test")) == 3


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no works.tsv in .*nowhere.*shakespeare:/path"):
        load_documents(f"shakespeare:{tmp_path / 'nowhere'}", "train")
    with pytest.raises(ValueError, match="split='dev'"):
        shakespeare_works("dev", tmp_path)
    with pytest.raises(ValueError, match="split='dev'"):
        load_documents("shakespeare", "dev")


def test_validation_pipeline_on_the_real_corpus(shakespeare_dir):
    # The README's character vocabulary: the sorted set of characters of all three splits.
    tokenizer = CharTokenizer.fit(canonical_text(s, shakespeare_dir) for s in SPLITS)
    documents = text_dataset(f"shakespeare:{shakespeare_dir}", "validation")
    stats = corpus_statistics(documents, tokenizer)
    assert stats["characters"] == sum(
        w["modern_chars"] for w in shakespeare_works("validation", shakespeare_dir)
    )
    assert stats["tokens"] == stats["characters"]  # no unknown character, one token each
    ds = lm_dataset(documents, tokenizer, 512, 64, training=False)
    total = sum(float(w.numpy().sum()) for _, _, w in ds)
    assert total == stats["lm_tokens"] == stats["characters"] + 3
