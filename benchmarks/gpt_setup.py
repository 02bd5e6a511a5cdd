"""Shared pieces of the DecoderLM vs keras-hub GPT-2 benchmarks: sizes, models, FLOPs, records.

Both models are GPT-2 shaped: learned absolute positions, pre-norm blocks with layer norm
(epsilon 1e-5), tanh-approximated GELU, a 4x feed-forward, biases everywhere, a final layer
norm and an output layer tied to the token embedding; no dropout. Only the implementation
differs: `keras_lm.models.DecoderLM` (subclassed model, our einsum attention) against
`keras_hub.models.GPT2CausalLM` over a `GPT2Backbone` (functional model, Keras
`MultiHeadAttention` -> `keras.ops.dot_product_attention`).
"""

import os
import pathlib
import platform
import statistics
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # runnable without installing the package
    sys.path.insert(0, str(REPO_ROOT))

import keras  # noqa: E402
import keras_hub  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_lm import host_memory  # noqa: E402
from keras_lm.models import DecoderLM  # noqa: E402
from matmul_peak import load_average  # noqa: E402,F401  (re-exported for the scripts)

# vocabulary 100: the Shakespeare character vocabulary is ~90 symbols plus specials.
SIZES = {
    # The small GPT of the character-level Shakespeare config.
    "small": dict(vocabulary_size=100, num_layers=4, num_heads=4, hidden_dim=128,
                  sequence_length=64, batch_size=12),
    # The "baby GPT" of nanoGPT's shakespeare_char recipe.
    "baby": dict(vocabulary_size=100, num_layers=6, num_heads=6, hidden_dim=384,
                 sequence_length=256, batch_size=16),
    # The small GPT with a 512-token context (long generation).
    "small512": dict(vocabulary_size=100, num_layers=4, num_heads=4, hidden_dim=128,
                     sequence_length=512, batch_size=1),
}


def build_ours(size):
    """A `DecoderLM` of `SIZES[size]`, built (variables created)."""
    spec = SIZES[size]
    model = DecoderLM(
        vocabulary_size=spec["vocabulary_size"],
        num_layers=spec["num_layers"],
        num_heads=spec["num_heads"],
        hidden_dim=spec["hidden_dim"],
        sequence_length=spec["sequence_length"],
        intermediate_dim=4 * spec["hidden_dim"],
        activation="gelu",
        position_encoding="learned",
        norm="layer_norm",
        dropout=0.0,
        tie_embeddings=True,
        name="keras_lm_decoder_lm",
    )
    model(keras.ops.zeros((1, spec["sequence_length"]), "int32"))
    # keras-hub's GPT-2 draws its token embedding from N(0, 0.01) (ours: 0.02). The same
    # start keeps the two models' losses on the same data close (the "last loss" column of
    # train_speed.py), a check that both train alike; the speed does not depend on it.
    table = model.embeddings.token_embedding.embeddings
    table.assign(keras.random.normal(table.shape, stddev=0.01, seed=0))
    return model


def build_keras_hub(size):
    """A `keras_hub.models.GPT2CausalLM` (tied head, no preprocessor) of `SIZES[size]`."""
    spec = SIZES[size]
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=spec["vocabulary_size"],
        num_layers=spec["num_layers"],
        num_heads=spec["num_heads"],
        hidden_dim=spec["hidden_dim"],
        intermediate_dim=4 * spec["hidden_dim"],
        dropout=0.0,
        max_sequence_length=spec["sequence_length"],
    )
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)


def matmul_params(size):
    """Parameters that multiply activations per token: all but the embedding tables, plus
    the tied output projection V x D (which is a real matmul per token)."""
    spec = SIZES[size]
    d, f, n_layers = spec["hidden_dim"], 4 * spec["hidden_dim"], spec["num_layers"]
    per_block = 4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d  # q k v o, ffn, 2 layer norms
    non_embedding = n_layers * per_block + 2 * d  # + final layer norm
    return non_embedding + spec["vocabulary_size"] * d


def train_flops_per_token(size):
    """Training FLOPs per token: 6 N + 12 L D T (Kaplan et al., 2020; PaLM appendix B).

    N = `matmul_params(size)` (weight matmuls, forward 2 N, backward 4 N); 12 L D T counts the
    two attention matmuls Q K^T and P V over the full T x T square (forward and backward),
    as PaLM does, not the causal half.
    """
    spec = SIZES[size]
    return 6 * matmul_params(size) + 12 * spec["num_layers"] * spec["hidden_dim"] * spec[
        "sequence_length"
    ]


def count_non_embedding(model, size):
    """Trainable parameters outside the token and position tables."""
    spec = SIZES[size]
    tables = (spec["vocabulary_size"] + spec["sequence_length"]) * spec["hidden_dim"]
    return model.count_params() - tables


def median(values):
    return statistics.median(values)


def machine_summary():
    """One line each: CPU model and flags of interest, core count, library versions, and
    TensorFlow's CPU allocator (one per process: both models of a comparison share it)."""
    model_name, flags = platform.processor() or "?", set()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                model_name = line.split(":", 1)[1].strip()
            if line.startswith("Flags:"):
                flags = set(line.split(":", 1)[1].split())
    except (OSError, subprocess.CalledProcessError):
        pass
    wanted = ["avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile"]
    return "\n".join([
        f"cpu: {model_name}, {os.cpu_count()} cores, flags: "
        + " ".join(flag for flag in wanted if flag in flags),
        f"tensorflow {tf.__version__}, keras {keras.__version__}, "
        f"keras-hub {keras_hub.__version__}, python {platform.python_version()}",
        f"tensorflow cpu allocator: {cpu_allocator()}",
    ])


def cpu_allocator():
    """Which allocator TensorFlow's CPU tensors use in this process (`keras_lm.host_memory`)."""
    names = {"bfc": "BFC, caching", "onednn": "oneDNN's, caching (oneDNN on)",
             "malloc": "malloc, no caching"}
    return (names[host_memory.default_allocator()]
            + f" ({host_memory.ENV_VAR}={os.environ.get(host_memory.ENV_VAR, 'unset')}, "
            f"keras_lm: {host_memory.status()})")
