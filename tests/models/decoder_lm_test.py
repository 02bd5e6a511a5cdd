import keras
import numpy as np
import pytest

from keras_lm.models import DecoderLM

V, T = 23, 12


def tiny(position_encoding="learned", **kwargs):
    config = dict(vocabulary_size=V, num_layers=2, num_heads=4, hidden_dim=16,
                  sequence_length=T, num_key_value_heads=2, position_encoding=position_encoding)
    config.update(kwargs)
    return DecoderLM(**config)


@pytest.mark.parametrize("position_encoding", ["learned", "sinusoidal", "rotary"])
def test_packed_documents_match_documents_run_alone(rng, position_encoding):
    model = tiny(position_encoding, norm="rms_norm", activation="swiglu")
    docs = [rng.integers(1, V, size=n) for n in (4, 5, 2)]
    window = np.concatenate(docs)[None, :]  # (1, 11)
    segments = np.concatenate([np.full(len(d), i + 1) for i, d in enumerate(docs)])[None, :]
    packed = np.array(model({"token_ids": window, "segment_ids": segments}))
    offset = 0
    for doc in docs:
        alone = np.array(model(doc[None, :]))
        np.testing.assert_allclose(packed[:, offset:offset + len(doc)], alone, atol=1e-5)
        offset += len(doc)
    # Without segment ids the second document does see the first one.
    unpacked = np.array(model(window))
    assert not np.allclose(unpacked[:, 4:9], packed[:, 4:9], atol=1e-4)


def test_causal(rng):
    model = tiny()
    ids = rng.integers(1, V, size=(2, T))
    reference = np.array(model(ids))
    changed = ids.copy()
    changed[:, 6:] = (changed[:, 6:] + 1) % V
    np.testing.assert_allclose(np.array(model(changed))[:, :6], reference[:, :6], atol=1e-6)


@pytest.mark.parametrize("tie_embeddings", [True, False])
def test_save_load_round_trip(tmp_path, rng, tie_embeddings):
    model = tiny("rotary", tie_embeddings=tie_embeddings, dropout=0.1)
    ids = rng.integers(1, V, size=(2, T))
    expected = np.array(model(ids))
    model.save(tmp_path / "lm.keras")
    reloaded = keras.saving.load_model(tmp_path / "lm.keras")
    assert reloaded.get_config() == model.get_config()
    np.testing.assert_array_equal(np.array(reloaded(ids)), expected)


def test_cached_call_equals_full_call(rng):
    model = tiny("sinusoidal")
    ids = rng.integers(1, V, size=(2, 7))
    full = np.array(model(ids))
    cache = model.init_cache(2, 7)
    logits, cache = model.call_with_cache(ids[:, :3], cache, 0)
    steps = [np.array(logits)]
    for t in range(3, 7):
        logits, cache = model.call_with_cache(ids[:, t:t + 1], cache, t)
        steps.append(np.array(logits))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)


def test_learns_a_tiny_corpus():
    # A repeating pattern: the next token is fully determined by the current one.
    pattern = np.array([1, 5, 9, 2, 7, 3])
    stream = np.tile(pattern, 40)
    x = np.stack([stream[i:i + T] for i in range(0, 200, 3)])
    y = np.stack([stream[i + 1:i + T + 1] for i in range(0, 200, 3)])
    model = tiny()
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    first = model.evaluate(x, y, verbose=0)
    model.fit(x, y, batch_size=8, epochs=10, verbose=0)
    last = model.evaluate(x, y, verbose=0)
    assert first > 2.5 and last < 0.2, (first, last)


def test_mixed_precision_close_to_float32(rng):
    ids = rng.integers(1, V, size=(2, T))
    reference = tiny()
    expected = np.array(reference(ids))
    keras.config.set_dtype_policy("mixed_bfloat16")
    mixed = tiny()
    mixed(ids)
    mixed.set_weights(reference.get_weights())
    logits = mixed(ids)
    assert logits.dtype == "float32"  # logits always float32 for a stable loss
    np.testing.assert_allclose(np.array(logits), expected, atol=0.05)


def test_bad_arguments():
    with pytest.raises(ValueError, match="position_encoding"):
        tiny("alibi")
    with pytest.raises(ValueError, match="hidden_dim"):
        tiny(hidden_dim=18)
    with pytest.raises(ValueError, match="num_key_value_heads"):
        tiny(num_key_value_heads=3)(np.ones((1, 2), "int32"))
    with pytest.raises(ValueError, match="num_layers"):
        tiny(num_layers=0)
    with pytest.raises(ValueError, match="token_ids"):
        tiny()({"ids": np.ones((1, 2), "int32")})
    with pytest.raises(ValueError, match="learned position table"):
        tiny()(np.ones((1, T + 1), "int32"))


def test_checkpoint_restores_every_weight(tmp_path):
    """The training checkpoint (used for resume and evaluate) holds every weight."""
    from keras_lm.training.checkpointing import model_checkpoint

    model, fresh = tiny(), tiny()
    model.build()
    fresh.build()
    path = model_checkpoint(model).write(str(tmp_path / "ckpt"))
    model_checkpoint(fresh).read(path).assert_consumed()
    for a, b in zip(model.weights, fresh.weights):
        np.testing.assert_array_equal(np.array(a), np.array(b), err_msg=a.path)
    k = [np.array(b.self_attention.key_dense.kernel) for b in model.blocks]
    v = [np.array(b.self_attention.value_dense.kernel) for b in model.blocks]
    assert not np.allclose(k[0], v[0]) and not np.allclose(k[0], k[1])


def test_training_and_decoding_use_the_fused_qkv_projection(rng, monkeypatch):
    # The one-matmul Q/K/V projection is what makes batch-1 decoding 2x keras-hub's
    # (experiments/benchmarks.md); a refactor that stopped passing the same tensor as
    # query and value would fall back to three projections without any test failing.
    from keras_lm.layers import MultiHeadAttention

    calls = []
    original = MultiHeadAttention._project_self

    def counting(self, x):
        calls.append(tuple(x.shape))
        return original(self, x)

    monkeypatch.setattr(MultiHeadAttention, "_project_self", counting)
    model = tiny()
    ids = rng.integers(1, V, size=(2, 5))
    model(ids)
    assert len(calls) == 2  # one per block
    cache = model.init_cache(2, 6)
    assert tuple(cache[0].shape) == (2, 2, 2, 6, 4)  # [B, 2, K, S, Dh]: heads first
    model.call_with_cache(ids[:, :1], cache, 0)
    assert len(calls) == 4
