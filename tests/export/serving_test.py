"""The proof that an export serves: a python without keras_lm, and TensorFlow's saved_model_cli.

A model trained for two steps is exported with `language_model.export`; then, at the same
time, (1) a fresh python in which `import keras_lm` fails loads it and runs every
signature, (2) `saved_model_cli show --all` lists the signatures and (3) `saved_model_cli
run` (a Session-based loader like TF Serving's) generates. All must agree with the
in-process model.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from keras_lm.tasks import language_model
from keras_lm.testing.configs import TINY_TEXT
from keras_lm.testing.configs import shrink
from keras_lm.testing.configs import write_tiny_corpus

from .conftest import isolated_python
from .conftest import reference_scores

PROMPTS = ["it was the", "", TINY_TEXT[:40], "Zé"]  # the third is longer than the context
SCORED = ["it was the age of wisdom", "", TINY_TEXT[:45]]
OPTIONS = {"max_new_tokens": 9, "temperature": 0.0, "top_k": 0, "top_p": 1.0, "seed": 0}
SAMPLING = {"max_new_tokens": 9, "temperature": 1.2, "top_k": 8, "top_p": 0.9, "seed": 5}

LOADER = r"""
import json
import tensorflow as tf

path, prompts, scored, options, sampling = sys.argv[1], *map(json.loads, sys.argv[2:])
loaded = tf.saved_model.load(path)
texts = lambda out: [t.decode("utf-8") for t in out["texts"].numpy()]
generate = loaded.signatures["generate"]
with_options = loaded.signatures["generate_with_options"]
scores = loaded.signatures["score"](texts=tf.constant(scored))
print(json.dumps({
    "keras_lm_error": keras_lm_error,
    "default": texts(loaded.signatures["serving_default"](prompts=tf.constant(prompts))),
    "generate": texts(generate(prompts=tf.constant(prompts))),
    "single": texts(generate(prompts=tf.constant(prompts[:1]))),
    "greedy": texts(with_options(prompts=tf.constant(prompts), **{
        k: tf.constant(v, tf.float32 if k in ("temperature", "top_p") else tf.int32)
        for k, v in options.items()})),
    "sampled": texts(with_options(prompts=tf.constant(prompts), **{
        k: tf.constant(v, tf.float32 if k in ("temperature", "top_p") else tf.int32)
        for k, v in sampling.items()})),
    "log_likelihood": scores["log_likelihood"].numpy().tolist(),
    "token_counts": scores["token_counts"].numpy().tolist(),
}))
"""


@pytest.fixture(scope="module")
def trained_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    config = shrink(language_model.default_config(), write_tiny_corpus(str(root / "corpus")),
                    steps=2)
    config.train.jit_compile = False  # compiles faster: two steps
    config.sample.update(temperature=0.0, max_new_tokens=9)  # the defaults of `generate`
    workdir = str(root / "workdir")
    language_model.train(config, workdir)
    path = language_model.export(workdir, str(root / "models"))
    _, tokenizer, model, step = language_model.load(workdir)
    assert step == 2
    return path, tokenizer, model


def _cli(*args):
    binary = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return subprocess.Popen([binary, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


@pytest.mark.slow
def test_export_serves_the_same_outputs_without_keras_lm(trained_export, tmp_path):
    path, tokenizer, model = trained_export
    cli_out = str(tmp_path / "cli_out")
    exprs = ";".join([f"prompts={PROMPTS[:2]!r}"] + [f"{k}={v}" for k, v in OPTIONS.items()])
    processes = {
        "loader": isolated_python(LOADER, path, *map(json.dumps, (PROMPTS, SCORED, OPTIONS,
                                                                  SAMPLING)),
                                  cwd=str(tmp_path), log_level=0),
        "show": _cli("show", "--dir", path, "--all"),
        "run": _cli("run", "--dir", path, "--tag_set", "serve", "--signature_def",
                    "generate_with_options", "--input_exprs", exprs, "--outdir", cli_out),
    }
    # In-process expectations, computed while the subprocesses start.
    greedy = model.generate(PROMPTS, tokenizer=tokenizer, truncate=True, **OPTIONS)
    sampled = model.generate(PROMPTS, tokenizer=tokenizer, truncate=True, **SAMPLING)
    scores = reference_scores(model, tokenizer, SCORED)
    results = {name: p.communicate(timeout=300) for name, p in processes.items()}
    for name, p in processes.items():
        assert p.returncode == 0, f"{name}: {results[name][1][-3000:]}"

    loaded = json.loads(results["loader"][0].strip().splitlines()[-1])
    assert loaded["keras_lm_error"] and "keras_lm" in loaded["keras_lm_error"]
    assert "Compiled cluster using XLA" in results["loader"][1]  # the decoding loop
    assert loaded["greedy"] == greedy
    assert loaded["sampled"] == sampled
    assert loaded["generate"] == loaded["default"] == greedy  # defaults: greedy, 9 tokens
    assert loaded["single"] == greedy[:1]
    np.testing.assert_allclose(loaded["log_likelihood"], [s[0] for s in scores], rtol=1e-5)
    assert loaded["token_counts"] == [s[1] for s in scores]

    show = results["show"][0]
    for name, inputs, outputs in [
        ("generate", ["prompts"], ["texts", "token_counts"]),
        ("generate_with_options",
         ["prompts", "max_new_tokens", "temperature", "top_k", "top_p", "seed"],
         ["texts", "token_counts"]),
        ("score", ["texts"], ["log_likelihood", "token_counts"]),
        ("serving_default", ["prompts"], ["texts", "token_counts"]),
    ]:
        block = show.split(f"signature_def['{name}']:")[1].split("signature_def[")[0]
        assert sorted(re.findall(r"inputs\['(\w+)'\]", block)) == sorted(inputs)
        assert sorted(re.findall(r"outputs\['(\w+)'\]", block)) == sorted(outputs)
    assert "dtype: DT_STRING" in show and "shape: (-1)" in show

    texts = np.load(os.path.join(cli_out, "texts.npy"), allow_pickle=True)
    assert [t.decode("utf-8") for t in texts] == greedy[:2]
    counts = np.load(os.path.join(cli_out, "token_counts.npy"))
    assert counts.tolist() == [len(t) for t in greedy[:2]]  # char model, no specials here
