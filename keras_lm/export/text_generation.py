"""The text-generation signatures shared by the LM export kinds (`causal_lm`, `ngram_lm`).

A kind supplies `generate_texts(prompts, max_new_tokens, temperature, top_k, top_p, seed)`
returning `{"texts", "token_counts"}`; these helpers wrap it in the two serving functions
every LM export offers, with one input signature for all of them:

    generate(prompts)                                   the kind's defaults baked in
    generate_with_options(prompts, max_new_tokens, temperature, top_k, top_p, seed)

TF Serving has no optional inputs, so the defaults live in a signature of their own.
"""

import tensorflow as tf

STRINGS = tf.TensorSpec([None], tf.string)

OPTION_SPECS = (
    tf.TensorSpec([], tf.int32, name="max_new_tokens"),
    tf.TensorSpec([], tf.float32, name="temperature"),
    tf.TensorSpec([], tf.int32, name="top_k"),
    tf.TensorSpec([], tf.float32, name="top_p"),
    tf.TensorSpec([], tf.int32, name="seed"),
)


def generation_functions(generate_texts, defaults):
    """The `generate` and `generate_with_options` `tf.function`s over `generate_texts`.

    Args:
        generate_texts: python function (prompts [B] string, max_new_tokens, temperature,
            top_k, top_p, seed) -> {"texts": string [B], "token_counts": int32 [B]}.
        defaults: dict of the five options, used by `generate`.

    Returns:
        (generate, generate_with_options), each with a full input signature.
    """
    defaults = dict(defaults)

    @tf.function(input_signature=[STRINGS])
    def generate(prompts):
        return generate_texts(prompts, **defaults)

    @tf.function(input_signature=[STRINGS, *OPTION_SPECS])
    def generate_with_options(prompts, max_new_tokens, temperature, top_k, top_p, seed):
        return generate_texts(prompts, max_new_tokens, temperature, top_k, top_p, seed)

    return generate, generate_with_options


def generation_signatures(module):
    """`serving_default` (= `generate`), `generate`, `generate_with_options` and `score`."""
    generate = module.generate.get_concrete_function()
    return {
        "serving_default": generate,
        "generate": generate,
        "generate_with_options": module.generate_with_options.get_concrete_function(),
        "score": module.score.get_concrete_function(),
    }


def generated_texts(tokenizer, new_ids):
    """The serving outputs of generation: `new_ids` ([B, None] ragged ids) as text.

    Returns:
        {"texts": string [B], valid UTF-8; "token_counts": int32 [B], new tokens per text}.
    """
    return {"texts": valid_utf8(tokenizer.detokenize(new_ids)),
            "token_counts": tf.cast(new_ids.row_lengths(), tf.int32)}


def valid_utf8(texts):
    """`texts` with invalid UTF-8 replaced by U+FFFD.

    Sampled bytes or pieces may end inside a character; JSON clients (TF Serving's REST API)
    need valid UTF-8.
    """
    return tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace",
                                        replace_control_characters=False)
