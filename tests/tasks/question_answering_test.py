import json

import pytest

from keras_lm.data import labeled
from keras_lm.tasks import question_answering


def _write(directory):
    colours = ["red", "blue", "green"]
    paragraphs = []
    for i in range(12):
        colour = colours[i % 3]
        context = f"The sky was {colour} that day, and the sea was calm."
        paragraphs.append({"context": context, "qas": [{
            "id": f"q{i}", "question": "What colour?",
            "answers": [{"text": colour, "answer_start": context.index(colour)}]}]})
    for split in ("train", "validation"):
        data = {"data": [{"title": "t", "paragraphs": paragraphs}]}
        (directory / f"{split}.json").write_text(json.dumps(data), encoding="utf-8")
    return str(directory / "{split}.json")


def test_qa_trains_and_answers_with_a_span_of_the_context(tmp_path):
    config = question_answering.default_config()
    config.data.update(source=_write(tmp_path), sequence_length=40, stride=16,
                       max_question_tokens=16, max_answer_tokens=10)
    config.model.update(num_layers=1, num_heads=2, hidden_dim=32, intermediate_dim=64,
                        sequence_length=40, dropout=0.0)
    config.train.update(steps=60, batch_size=8, learning_rate=1e-2, warmup_steps=2,
                        eval_every=30, log_every=30, jit_compile=False)
    workdir = str(tmp_path / "run")
    question_answering.train(config, workdir)
    metrics = question_answering.evaluate(workdir, "validation")
    assert metrics["questions"] == 12 and metrics["step"] == 60
    assert metrics["f1"] > 50.0  # long contexts are split in windows (stride 16)
    context = "The sky was blue that day, and the sea was calm."
    answer = question_answering.predict(workdir, question="What colour?", context=context)
    assert answer and answer in context
    with pytest.raises(ValueError, match="--question and --context"):
        question_answering.predict(workdir, text="What colour?")
    with pytest.raises(ValueError, match="--context is empty"):
        question_answering.predict(workdir, question="What colour?", context=" \n")
    with pytest.raises(ValueError, match="--question is empty"):
        question_answering.predict(workdir, question="", context=context)
    assert len(labeled.load_squad(config.data.source, "train")) == 12


def test_rows_longer_than_the_encoder_are_refused_before_training(tmp_path):
    """Sinusoidal positions would train such rows, then the export would refuse them."""
    config = question_answering.default_config()
    config.data.update(source=_write(tmp_path), sequence_length=48, stride=16)
    config.model.update(sequence_length=40, position_encoding="sinusoidal", num_layers=1,
                        num_heads=2, hidden_dim=16, intermediate_dim=32)
    config.train.update(steps=1, batch_size=4, eval_every=1, jit_compile=False)
    with pytest.raises(ValueError, match=r"sequence_length=48 is longer than the encoder's"):
        question_answering.train(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
    config.data.sequence_length = 40
    config.model.num_segments = 1  # question and context need segment ids 0 and 1
    with pytest.raises(ValueError, match=r"reads pairs \(question and context\)"):
        question_answering.train(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
