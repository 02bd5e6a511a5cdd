import numpy as np
import pytest

from keras_lm.data import load_documents
from keras_lm.data import masking
from keras_lm.tasks import classification
from keras_lm.tasks import masked_lm
from keras_lm.testing.configs import shrink
from keras_lm.testing.configs import write_tiny_corpus


def tiny_mlm_config(tmp_path, steps=4):
    config = shrink(masked_lm.default_config(), write_tiny_corpus(str(tmp_path / "corpus")),
                    steps=steps)
    config.model.update(dropout=0.0)
    config.train.update(jit_compile=False, eval_steps=None, learning_rate=1e-2)
    return config


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A masked-LM workdir trained for 4 steps on the tiny corpus (shared by the tests)."""
    tmp_path = tmp_path_factory.mktemp("pretrained")
    config = tiny_mlm_config(tmp_path)
    workdir = str(tmp_path / "mlm")
    masked_lm.train(config, workdir)
    return config, workdir


def test_mlm_loss_counts_only_masked_positions(pretrained):
    config, workdir = pretrained
    metrics = masked_lm.evaluate(workdir, "validation")
    assert metrics["step"] == 4
    _, tokenizer, model, _ = masked_lm.load(workdir)
    dataset = masking.masked_lm_dataset(load_documents(config.data.source, "validation"),
                                        tokenizer, 16, 4, training=False)
    total, count, correct = 0.0, 0, 0
    for features, labels, weights in dataset:
        logits = np.asarray(model(features), np.float64)
        log_probs = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(
            -1, keepdims=True)) - logits.max(-1, keepdims=True)
        chosen = np.asarray(weights) > 0
        labels = np.asarray(labels)
        picked = np.take_along_axis(log_probs, labels[..., None], -1)[..., 0]
        total -= picked[chosen].sum()
        count += chosen.sum()
        correct += (logits.argmax(-1) == labels)[chosen].sum()
        # Unchosen positions are never counted: about 15% of the tokens are.
        assert 0.05 < chosen.mean() < 0.25
    assert metrics["masked_tokens"] == count
    assert metrics["loss"] == pytest.approx(total / count, rel=1e-4)
    assert metrics["accuracy"] == pytest.approx(correct / count)


def test_pretrained_backbone_really_loads(pretrained, tmp_path):
    config, workdir = pretrained
    _, tokenizer, mlm, _ = masked_lm.load(workdir)
    fine_tuning = classification.default_config()
    fine_tuning.model = config.model.copy_and_resolve_references()
    fine_tuning.init_from = workdir
    loaded = classification.build_model(fine_tuning, tokenizer, 3, initialize=True)
    fresh = classification.build_model(fine_tuning, tokenizer, 3, initialize=False)
    ids = np.asarray(tokenizer.tokenize(["it was the age", "of wisdom"]).to_tensor())
    inputs = {"token_ids": ids, "segment_ids": np.zeros_like(ids)}
    expected = np.asarray(mlm.backbone(inputs)["sequence_output"])
    np.testing.assert_allclose(loaded.backbone(inputs)["sequence_output"], expected, atol=1e-6)
    assert not np.allclose(fresh.backbone(inputs)["sequence_output"], expected, atol=1e-3)


def test_mismatched_vocabulary_or_architecture_is_refused(pretrained, tmp_path):
    from keras_lm.tokenizers import CharTokenizer

    config, workdir = pretrained
    other = CharTokenizer.fit(["a different corpus"])
    fine_tuning = classification.default_config()
    fine_tuning.model = config.model.copy_and_resolve_references()
    fine_tuning.init_from = workdir
    with pytest.raises(ValueError, match=r"init_from=.*vocabulary of \d+ tokens"):
        classification.build_model(fine_tuning, other, 2, initialize=True)
    _, tokenizer, _, _ = masked_lm.load(workdir)
    wider = classification.default_config()
    wider.model = config.model.copy_and_resolve_references()
    wider.model.hidden_dim = 32
    wider.init_from = workdir
    with pytest.raises(ValueError, match="hidden_dim: pre-trained 16, here 32"):
        classification.build_model(wider, tokenizer, 2, initialize=True)
    # A workdir whose saved tokenizer differs from the pre-trained one is refused.
    fine_workdir = tmp_path / "fine"
    other.save(str(fine_workdir / "tokenizer"))
    with pytest.raises(ValueError, match="init_from"):
        classification.build_tokenizer(fine_tuning, str(fine_workdir))


def test_export_of_a_pretraining_workdir_names_the_way_to_a_servable_model(pretrained, tmp_path):
    _, workdir = pretrained
    with pytest.raises(ValueError, match="init_from"):
        masked_lm.export(workdir, str(tmp_path / "models"))
    assert not (tmp_path / "models").exists()
