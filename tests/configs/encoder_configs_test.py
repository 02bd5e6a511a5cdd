"""The encoder configs (masked-LM pre-training, genre classification) train, shrunk, on tiny
data, and the genre config fine-tunes the pre-trained workdir through `init_from`."""

import pathlib
import runpy

from keras_lm.tasks import classification
from keras_lm.tasks import masked_lm
from keras_lm.testing.configs import TINY_TEXT
from keras_lm.testing.configs import shrink
from keras_lm.testing.configs import write_tiny_corpus

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[2] / "configs"


def load(name):
    return runpy.run_path(str(CONFIG_DIR / name))["get_config"]()


def _genre_tsv(directory):
    sentences = [s.strip() for s in TINY_TEXT.split(",")]
    for split in ("train", "validation"):
        lines = ["text\tlabel"] + [f"{s}\t{'tragedy' if 'worst' in s or 'Dark' in s else 'comedy'}"
                                   for s in sentences * 3]
        (directory / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(directory / "{split}.tsv")


def test_mlm_and_genre_configs_pretrain_then_fine_tune(tmp_path):
    mlm = load("shakespeare_mlm.py")
    genre = load("shakespeare_genre.py")
    assert mlm.task == "masked_lm" and genre.task == "classification"
    # The genre encoder is the pre-trained one: init_from needs the same architecture.
    for field in masked_lm.ARCHITECTURE_FIELDS:
        assert mlm.model[field] == genre.model[field], field
    shrink(mlm, write_tiny_corpus(str(tmp_path / "corpus")), steps=2)
    mlm.train.jit_compile = False
    masked_lm.train(mlm, str(tmp_path / "mlm"))
    assert masked_lm.evaluate(str(tmp_path / "mlm"))["masked_tokens"] > 0

    shrink(genre, _genre_tsv(tmp_path), steps=2)
    genre.data.source_options = {}
    genre.train.jit_compile = False
    for name, value in mlm.model.items():  # shrink() made the same changes to both models
        assert genre.model[name] == value, name
    genre.init_from = str(tmp_path / "mlm")
    result = classification.train(genre, str(tmp_path / "genre"))
    assert result.final_step == 2
    metrics = classification.evaluate(str(tmp_path / "genre"))
    assert 0.0 <= metrics["accuracy"] <= 1.0
