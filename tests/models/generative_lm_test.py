"""The input convention every token-by-token language model shares (`unpack_lm_inputs`)."""

import numpy as np
import pytest

from keras_lm.models import DecoderLM
from keras_lm.models import HMMLanguageModel
from keras_lm.models import RecurrentLM
from keras_lm.models.generative_lm import unpack_lm_inputs

V, T = 11, 8


def test_unpack_lm_inputs():
    ids = np.arange(6).reshape(2, 3)
    segments = np.ones_like(ids)
    assert unpack_lm_inputs(ids) == (ids, None)
    token_ids, segment_ids = unpack_lm_inputs({"token_ids": ids, "segment_ids": segments})
    assert token_ids is ids and segment_ids is segments
    token_ids, segment_ids = unpack_lm_inputs({"token_ids": ids})
    assert token_ids is ids and segment_ids is None


@pytest.mark.parametrize("build", [
    lambda: DecoderLM(vocabulary_size=V, num_layers=1, num_heads=2, hidden_dim=8,
                      sequence_length=T),
    lambda: RecurrentLM(vocabulary_size=V, cell="gru", hidden_dim=8, sequence_length=T),
    lambda: HMMLanguageModel(4, V, sequence_length=T),
], ids=["decoder", "recurrent", "hmm"])
def test_dict_input_without_token_ids_is_a_clear_error(build):
    model = build()
    ids = np.ones((1, T), "int32")
    assert model(ids).shape[-1] == V  # the plain ids input works
    with pytest.raises(ValueError, match=r"needs a `token_ids` entry.*Received keys: \['ids'\]"):
        model({"ids": ids})
