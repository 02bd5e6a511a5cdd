import pytest

from keras_lm.tasks import tagging

SENTENCES = [("Anna met Bob", "B-PER O B-PER"), ("Bob saw Paris", "B-PER O B-LOC"),
             ("Paris met Anna Lee", "B-LOC O B-PER I-PER"), ("Lee saw Rome", "B-PER O B-LOC")]


def _write(directory):
    for split, repeats in (("train", 8), ("validation", 1)):
        lines = []
        for _ in range(repeats):
            for words, tags in SENTENCES:
                lines += [f"{w} X {t}" for w, t in zip(words.split(), tags.split())] + [""]
        (directory / f"{split}.conll").write_text("\n".join(lines), encoding="utf-8")
    return str(directory / "{split}.conll")


def test_tagger_trains_evaluates_and_predicts_per_word(tmp_path):
    config = tagging.default_config()
    config.data.update(source=_write(tmp_path), sequence_length=24)
    config.model.update(num_layers=1, num_heads=2, hidden_dim=32, intermediate_dim=64,
                        sequence_length=24, dropout=0.0)
    config.classifier.dropout = 0.0
    config.train.update(steps=60, batch_size=8, learning_rate=1e-2, warmup_steps=2,
                        eval_every=30, log_every=30, jit_compile=False)
    workdir = str(tmp_path / "run")
    tagging.train(config, workdir)
    metrics = tagging.evaluate(workdir, "validation")
    assert metrics["entities"] == 8 and metrics["sentences"] == 4
    assert metrics["f1"] > 0.8 and metrics["token_accuracy"] > 0.9
    line = tagging.predict(workdir, text="Anna saw Rome")
    assert [pair.rsplit("/", 1)[0] for pair in line.split()] == ["Anna", "saw", "Rome"]
    assert line.split()[1] == "saw/O"


def test_rows_longer_than_the_encoder_are_refused_before_training(tmp_path):
    """Sinusoidal positions would train such rows, then the export would refuse them."""
    config = tagging.default_config()
    config.data.update(source=_write(tmp_path), sequence_length=32)
    config.model.update(sequence_length=24, position_encoding="sinusoidal", num_layers=1,
                        num_heads=2, hidden_dim=16, intermediate_dim=32)
    config.train.update(steps=1, batch_size=4, eval_every=1, jit_compile=False)
    with pytest.raises(ValueError, match=r"sequence_length=32 is longer than the encoder's"):
        tagging.train(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
