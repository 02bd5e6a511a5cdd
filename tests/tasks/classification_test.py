import pytest

from keras_lm.tasks import classification


def _write_pairs(directory, count):
    """Pairs labelled by the first word of their second text: only the pair layout tells."""
    words = ["red", "blue", "green", "gold"]
    for split, n in (("train", count), ("validation", 8)):
        lines = ["premise\thypothesis\tlabel"]
        for i in range(n):
            a, b = words[i % 4], words[(i // 4 + i) % 4]
            lines.append(f"{a} sky\t{b} sea\t{'same' if b in ('red', 'gold') else 'different'}")
        (directory / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(directory / "{split}.tsv")


def tiny_config(source):
    config = classification.default_config()
    config.data.update(source=source, text_column="premise", text_pair_column="hypothesis",
                       sequence_length=16)
    config.model.update(num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32,
                        sequence_length=16, dropout=0.0, pooling="first")
    config.classifier.dropout = 0.0
    config.train.update(steps=40, batch_size=16, learning_rate=1e-2, warmup_steps=2,
                        eval_every=20, log_every=20, jit_compile=False)
    return config


def test_classifier_learns_a_pair_task_and_predicts(tmp_path):
    config = tiny_config(_write_pairs(tmp_path, 64))
    workdir = str(tmp_path / "run")
    result = classification.train(config, workdir)
    assert result.final_step == 40
    metrics = classification.evaluate(workdir, "validation")
    assert metrics["accuracy"] == 1.0 and metrics["macro_f1"] == 1.0
    assert metrics["step"] == 40 and metrics["examples"] == 8
    assert "accuracy=1.0000" in classification.format_metrics(metrics)
    line = classification.predict(workdir, text="blue sky", text_pair="gold sea")
    label, probabilities = line.split("\t")
    assert label == "same" and "different=" in probabilities
    with pytest.raises(ValueError, match="--text_pair"):
        classification.predict(workdir, text="gold sky")


def test_unknown_label_and_missing_column_are_clear_errors(tmp_path):
    source = _write_pairs(tmp_path, 16)
    with open(tmp_path / "validation.tsv", "a", encoding="utf-8") as f:
        f.write("red sky\tred sea\tmaybe\n")
    config = tiny_config(source)
    with pytest.raises(ValueError, match=r"Unknown label 'maybe' in the validation split"):
        classification.train(config, str(tmp_path / "run"))
    config = tiny_config(source)
    config.model.num_segments = 1  # pairs need segment ids 0 and 1
    with pytest.raises(ValueError, match=r"reads pairs .*num_segments=1"):
        classification.train(config, str(tmp_path / "run4"))
    assert not (tmp_path / "run4").exists()
    config = tiny_config(source)
    config.data.label_colum = "label"  # misspelt: refused before anything is written
    with pytest.raises(ValueError, match=r"Unknown data config field\(s\) \['label_colum'\]"):
        classification.train(config, str(tmp_path / "run3"))
    assert not (tmp_path / "run3").exists()
    config = tiny_config(source)
    config.data.label_column = "gold_label"
    with pytest.raises(ValueError, match=r"label_column='gold_label'.*\['hypothesis', 'label'"):
        classification.train(config, str(tmp_path / "run2"))
