"""Every config in configs/ trains, evaluates and samples, shrunk, on a tiny corpus."""

import pathlib
import runpy

import pytest

from keras_lm.tasks import language_model
from keras_lm.testing.configs import shrink
from keras_lm.testing.configs import write_tiny_corpus

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[2] / "configs"
CONFIGS = sorted(p.name for p in CONFIG_DIR.glob("*.py"))


def load(name):
    return runpy.run_path(str(CONFIG_DIR / name))["get_config"]()


def test_configs_exist():
    assert {"demo.py", "shakespeare_char.py", "shakespeare_sp.py",
            "shakespeare_baby_gpt.py"} <= set(CONFIGS)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_is_documented_and_runs(name, tmp_path):
    text = (CONFIG_DIR / name).read_text()
    assert "keras-lm " in text, f"{name}: the docstring must give the command"
    config = load(name)
    if config.get("task", "language_model") != "language_model":
        pytest.skip(f"{name} is not a language-model config")
    shrink(config, write_tiny_corpus(str(tmp_path / "corpus")), steps=2)
    result = language_model.train(config, str(tmp_path / "run"))
    counted = config.model.get("type") == "ngram"  # counting has no steps
    assert result.final_step == (0 if counted else 2)
    metrics = language_model.evaluate(str(tmp_path / "run"))
    assert metrics["bits_per_character"] > 0


@pytest.mark.parametrize("name", ["shakespeare_char.py", "shakespeare_baby_gpt.py"])
def test_shakespeare_char_vocabulary_follows_the_readme(name, shakespeare_dir, tmp_path):
    """The char vocabulary is the sorted character set of all three splits."""
    from keras_lm.data import canonical_text

    config = load(name)
    tokenizer = language_model.build_tokenizer(config)
    characters = sorted(set("".join(canonical_text(s) for s in ("train", "validation", "test"))))
    assert tokenizer.vocabulary_size == len(characters) + len(tokenizer.special_ids)
