"""The QA export: `answer(questions, contexts)` equals the in-process answer decoding.

The reference is `keras_lm.tasks.question_answering.answer` (numpy windows + best_spans).
Rows are 24 tokens with a stride of 6, so the contexts below span up to ~40 windows.
"""

import json
import types

import numpy as np
import pytest
import tensorflow as tf

from keras_lm import export
from keras_lm.data import encoder_inputs
from keras_lm.export import QAModule
from keras_lm.models import QuestionAnswering
from keras_lm.tasks import masked_lm
from keras_lm.tasks import question_answering
from keras_lm.testing.configs import TINY_TEXT
from keras_lm.tokenizers import ByteTokenizer
from keras_lm.tokenizers import SentencePieceTokenizer

from .conftest import isolated_python
from .conftest import qa_workdir
from .conftest import randomize

QUESTIONS = ["What was it?", "", "a question longer than eight tokens", "Zé?", "who", "x"]
CONTEXTS = [
    TINY_TEXT.strip(),  # ~40 windows
    "it was the age of wisdom",
    "the epoch of belief, the season of Light",
    "Zé saw   the  Darkness é",  # unknown characters, runs of spaces
    "",  # no span at all: "" and -inf
    "   ",  # only spaces: a span, trimmed to ""
]

LOADER = r"""
import json
import tensorflow as tf

path, questions, contexts = sys.argv[1], *map(json.loads, sys.argv[2:])
loaded = tf.saved_model.load(path)
results = {"keras_lm_error": keras_lm_error}
for name, signature, rows in [("answer", "answer", slice(None)), ("single", "answer", slice(2, 3)),
                              ("default", "serving_default", slice(None))]:
    out = loaded.signatures[signature](questions=tf.constant(questions[rows]),
                                       contexts=tf.constant(contexts[rows]))
    results[name] = {"answers": [a.decode("utf-8") for a in out["answers"].numpy()],
                     "scores": out["scores"].numpy().tolist()}
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("qa")
    workdir = qa_workdir(str(root))
    path = question_answering.export(workdir, str(root / "models"))
    config, tokenizer, model, step = question_answering.load(workdir)
    assert step == 3
    return path, workdir, config, tokenizer, model


def _expected(model, tokenizer, config, questions, contexts):
    examples = [{"question": q, "context": c} for q, c in zip(questions, contexts)]
    answers = question_answering.answer(model, tokenizer, config, examples)
    return [a["text"] for a in answers], [a["score"] for a in answers]


def _check(out, texts, scores):
    answers = [a if isinstance(a, str) else a.decode("utf-8") for a in np.asarray(out["answers"])]
    assert answers == texts
    np.testing.assert_allclose(np.asarray(out["scores"]), scores, rtol=1e-5)


@pytest.mark.slow
def test_export_serves_the_same_answers_without_keras_lm(exported, tmp_path):
    path, workdir, config, tokenizer, model = exported
    loader = isolated_python(LOADER, path, json.dumps(QUESTIONS), json.dumps(CONTEXTS),
                             cwd=str(tmp_path))
    texts, scores = _expected(model, tokenizer, config, QUESTIONS, CONTEXTS)
    predicted = question_answering.predict(workdir, question=QUESTIONS[2],
                                           context=CONTEXTS[2])
    stdout, stderr = loader.communicate(timeout=300)
    assert loader.returncode == 0, stderr[-3000:]
    loaded = json.loads(stdout.strip().splitlines()[-1])
    assert loaded["keras_lm_error"] and "keras_lm" in loaded["keras_lm_error"]
    for name in ("answer", "default"):
        _check(loaded[name], texts, scores)
    _check(loaded["single"], texts[2:3], scores[2:3])
    assert loaded["single"]["answers"] == [predicted]
    assert texts[4] == "" and scores[4] == -np.inf  # an empty context
    assert texts[5] == "" and np.isfinite(scores[5])  # a span of spaces, trimmed
    assert all(text in context for text, context in zip(texts, CONTEXTS))
    assert len({t for t in texts if t}) >= 3  # the random weights pick different spans


def test_metadata_and_core_ops(exported):
    path, _, config, _, _ = exported
    metadata = export.read_metadata(path)
    assert metadata["kind"] == "question_answering"
    assert metadata["serving_default"] == "answer"
    assert metadata["qa_options"] == {"sequence_length": 24, "stride": 6,
                                      "max_question_tokens": 8, "max_answer_tokens": 5}
    assert metadata["signatures"]["answer"] == {
        "inputs": {"contexts": {"dtype": "string", "shape": [None]},
                   "questions": {"dtype": "string", "shape": [None]}},
        "outputs": {"answers": {"dtype": "string", "shape": [None]},
                    "scores": {"dtype": "float32", "shape": [None]}},
    }
    assert metadata["requires"] == [] and export.non_core_ops(path) == []


def test_module_equals_in_process_answers(exported):
    _, _, config, tokenizer, model = exported
    module = QAModule(model, tokenizer, **_options(config))
    for rows in (slice(None), slice(0, 1), slice(3, 4)):
        out = module.answer(tf.constant(QUESTIONS[rows]), tf.constant(CONTEXTS[rows]))
        _check(out, *_expected(model, tokenizer, config, QUESTIONS[rows], CONTEXTS[rows]))
    empty = module.answer(tf.constant([], tf.string), tf.constant([], tf.string))
    assert empty["answers"].shape == (0,) and empty["scores"].shape == (0,)
    with pytest.raises(tf.errors.InvalidArgumentError, match="one context per question"):
        module.answer(tf.constant(["a", "b"]), tf.constant(["a"]))


def test_a_stride_longer_than_the_window_uses_the_window(exported):
    """python refuses stride > window; the graph then steps by the window length."""
    _, _, config, tokenizer, model = exported
    question = "who"  # 3 tokens: windows of 24 - 3 - 3 = 18 context tokens
    options = dict(_options(config), stride=100)
    out = QAModule(model, tokenizer, **options).answer(tf.constant([question]),
                                                       tf.constant([CONTEXTS[0]]))
    as_python = _namespace(dict(options, stride=18))
    _check(out, *_expected(model, tokenizer, as_python, [question], CONTEXTS[:1]))
    with pytest.raises(ValueError, match="stride=100 is larger than the 18 context tokens"):
        _expected(model, tokenizer, _namespace(options), [question], CONTEXTS[:1])


@pytest.mark.parametrize("kind", ["byte", "sentencepiece"])
def test_byte_and_sentencepiece_offsets(kind, tmp_path, exported):
    """Byte tokens share their character's span; SentencePiece pieces map through offsets."""
    _, _, config, _, _ = exported
    if kind == "byte":
        tokenizer = ByteTokenizer()
    else:
        tokenizer = SentencePieceTokenizer.train([TINY_TEXT * 4], str(tmp_path / "spm"),
                                                 vocab_size=40)
    backbone = masked_lm.build_backbone(
        config.model, encoder_inputs.encoder_vocabulary_size(tokenizer))
    model = randomize(QuestionAnswering(backbone), seed=1)
    model.build()
    module = QAModule(model, tokenizer, **_options(config))
    contexts = ["Zé saw é the season", "ééé é ab", CONTEXTS[0][:60]]
    out = module.answer(tf.constant(QUESTIONS[:3]), tf.constant(contexts))
    _check(out, *_expected(model, tokenizer, config, QUESTIONS[:3], contexts))
    if kind == "byte":
        path = str(tmp_path / "byte_qa")
        tf.saved_model.save(module, path, signatures=module.signatures())
        assert export.non_core_ops(path) == []


def test_bad_options_are_refused(exported):
    _, _, config, tokenizer, model = exported
    with pytest.raises(ValueError, match=r"`max_question_tokens` must be an int >= 0 and <= 20"):
        QAModule(model, tokenizer, **dict(_options(config), max_question_tokens=21))
    with pytest.raises(ValueError, match="`stride` must be an int >= 1"):
        QAModule(model, tokenizer, **dict(_options(config), stride=0))


def _options(config):
    return {name: config.data[name] for name in
            ("sequence_length", "stride", "max_question_tokens", "max_answer_tokens")}


def _namespace(options):
    return types.SimpleNamespace(data=types.SimpleNamespace(**options))
