"""What every keras_lm language model that decodes token by token shares."""


class GenerativeLM:
    """Mixin giving a language model `generate`, from its cache interface.

    A model mixes this in (`class DecoderLM(GenerativeLM, keras.Model)`) and provides
    `vocabulary_size`, `sequence_length`, `init_cache(batch, length)`,
    `call_with_cache(token_ids, cache, index) -> (logits, cache)` and a full forward call;
    a model whose cache is a state rather than per-position keys and values sets
    `cache_is_positional = False`. See `keras_lm.generation.decoding`.
    """

    cache_is_positional = True

    def generate(self, prompts, max_new_tokens=64, tokenizer=None, **kwargs):
        """Continues prompts; see `keras_lm.generation.generate` for every option.

        Args:
            prompts: a str or list of str (needs `tokenizer`), or lists of token ids.
            max_new_tokens: int, at most this many new tokens per prompt.
            tokenizer: a keras_lm tokenizer matching this model's vocabulary.
            **kwargs: `temperature`, `top_k`, `top_p`, `seed`, `stop_token_ids`,
                `stop_strings`, `truncate`, `use_cache`.

        Returns:
            The continuations (str with a tokenizer, else lists of ids).
        """
        from keras_lm.generation import generate

        return generate(self, prompts, max_new_tokens=max_new_tokens, tokenizer=tokenizer,
                        **kwargs)


def unpack_lm_inputs(inputs):
    """A language model's inputs -> (token_ids, segment_ids or None).

    Args:
        inputs: int [B, T] token ids, or a dict with "token_ids" [B, T] and optionally
            "segment_ids" [B, T] (packed documents: 0 for padding, 1, 2, ... per document).
    """
    if isinstance(inputs, dict):
        if "token_ids" not in inputs:
            raise ValueError(
                "A dict input needs a `token_ids` entry (and optionally `segment_ids`). "
                f"Received keys: {sorted(inputs)}"
            )
        return inputs["token_ids"], inputs.get("segment_ids")
    return inputs, None
