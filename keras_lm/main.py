"""The `keras-lm` command: train, evaluate and sample experiments from config files.

    keras-lm train    --config=configs/demo.py --workdir=DIR [--config.train.steps=500]
    keras-lm evaluate --workdir=DIR [--split=validation|test] [--checkpoint=latest|best]
    keras-lm generate --workdir=DIR --prompt=TEXT [--max_new_tokens=N] [--temperature=0]
    keras-lm generate --workdir=DIR --text=SOURCE [--beam_size=4]     (sequence-to-sequence)
    keras-lm predict  --workdir=DIR --text=TEXT [--text_pair=TEXT]   (classifier, tagger)
    keras-lm predict  --workdir=DIR --question=TEXT --context=TEXT    (extractive QA)
    keras-lm export   --workdir=DIR --export_dir=OUT [--version=N] [--overwrite]

`train` writes the resolved config into the workdir; the other commands read
it back, so they need no --config. The same --workdir resumes training from its latest
checkpoint. This file only parses and dispatches: the work is in `keras_lm.tasks`.
"""

import os
import re
import runpy
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

COMMANDS = ("train", "evaluate", "generate", "predict", "export")

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (configs/NAME.py); fields overridable as "
    "--config.section.field=value.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Experiment directory (created by train).")
_SPLIT = flags.DEFINE_enum("split", "validation", ["train", "validation", "test"],
                           "evaluate: the split to score.")
_CHECKPOINT = flags.DEFINE_enum("checkpoint", "latest", ["latest", "best"],
                                "evaluate/generate/export: which checkpoint to load.")
_PROMPT = flags.DEFINE_multi_string("prompt", None, "generate: prompt text (repeatable).")
_MAX_NEW_TOKENS = flags.DEFINE_integer(
    "max_new_tokens", None, "generate: the most tokens to add. Default: language models fill "
    "the context (its length minus the longest prompt's tokens, at least 1), n-gram models add "
    "200, sequence-to-sequence models stop at their target length.")
_TEMPERATURE = flags.DEFINE_float("temperature", 0.8, "generate: 0 means greedy.")
_TOP_K = flags.DEFINE_integer("top_k", 0, "generate: keep the k most likely tokens (0: off).")
_TOP_P = flags.DEFINE_float("top_p", 1.0, "generate: nucleus mass (1.0: off).")
_SEED = flags.DEFINE_integer("seed", 0, "generate: sampling seed.")
_STOP = flags.DEFINE_multi_string("stop", None, "generate: stop strings (repeatable).")
_TEXT = flags.DEFINE_multi_string(
    "text", None, "predict: the text to classify or tag; generate (sequence-to-sequence): a "
    "source to transduce (repeatable, one output line each).")
_BEAM_SIZE = flags.DEFINE_integer(
    "beam_size", 1, "generate (sequence-to-sequence): 1 = greedy decoding (or sampling with "
    "--temperature), K > 1 = beam search with K beams.")
_LENGTH_PENALTY = flags.DEFINE_float(
    "length_penalty", None, "generate (sequence-to-sequence beam search): alpha of "
    "log P / ((5 + n) / 6)^alpha; default: the config's evaluate.length_penalty.")
_TEXT_PAIR = flags.DEFINE_string("text_pair", None, "predict: second text of a pair.")
_QUESTION = flags.DEFINE_string("question", None, "predict: the question (question answering).")
_CONTEXT = flags.DEFINE_string("context", None, "predict: the passage holding the answer.")
_TRUNCATE = flags.DEFINE_bool("truncate", False,
                              "generate: keep the end of a prompt too long for the context "
                              "instead of failing.")
_EXPORT_DIR = flags.DEFINE_string("export_dir", None,
                                  "export: the model base directory (TF Serving's "
                                  "--model_base_path); the SavedModel goes to OUT/<version>/.")
_VERSION = flags.DEFINE_integer("version", None,
                                "export: version number (default: the next free one).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False,
                               "export: replace an existing version directory.")


# config.task -> the module that implements it. A task module offers:
#   train_and_report(config, workdir) -> None    (trains, then prints metrics / samples)
#   evaluate(workdir, split, which) -> dict       and format_metrics(dict) -> str
#   generate(workdir, prompts, **sampling) -> list[str]   (generative tasks)
#   predict(workdir, text, text_pair, question, context) -> str   (classifiers, QA)
#   export(workdir, export_dir, version, overwrite, which) -> str  (SavedModel version dir)
TASKS = {
    "language_model": "keras_lm.tasks.language_model",
    "masked_lm": "keras_lm.tasks.masked_lm",
    "classification": "keras_lm.tasks.classification",
    "tagging": "keras_lm.tasks.tagging",
    "question_answering": "keras_lm.tasks.question_answering",
    "seq2seq": "keras_lm.tasks.seq2seq",
}


def task_module(task):
    """The module implementing `task` (imports TensorFlow; call after flag parsing)."""
    import importlib

    if task not in TASKS:
        raise app.UsageError(f"Unknown config.task {task!r}. Valid tasks: {sorted(TASKS)}.")
    return importlib.import_module(TASKS[task])


def main(argv):
    try:
        _run_command(argv)
    except (ValueError, FileNotFoundError, FileExistsError, FloatingPointError) as error:
        # A user's mistake (or a diverged run): the message names the fix, a traceback
        # would only bury it. Set --verbosity=1 to see where it came from.
        if logging.get_verbosity() >= logging.DEBUG:
            raise
        print(f"keras-lm {argv[1] if len(argv) > 1 else ''}: error: {error}", file=sys.stderr)
        sys.exit(1)


def _run_command(argv):
    if len(argv) != 2 or argv[1] not in COMMANDS:
        raise app.UsageError(
            f"Give one command: {' | '.join(COMMANDS)}. Received: {argv[1:]}. "
            "Example: keras-lm train --config=configs/demo.py --workdir=/tmp/demo"
        )
    if _WORKDIR.value is None:
        raise app.UsageError("--workdir is required (the experiment directory).")
    command, workdir = argv[1], _WORKDIR.value
    if command == "export" and not _EXPORT_DIR.value:
        raise app.UsageError("export needs --export_dir=OUT (the directory that holds the "
                             "numbered versions, TF Serving's --model_base_path).")
    if command == "train":
        if _CONFIG.value is None:
            raise app.UsageError("train needs --config=configs/NAME.py.")
        config = _CONFIG.value
        train_config = config.get("train") or {}
        if train_config.get("strategy") == "multi_worker":
            # Collective ops are configured at program start-up: the strategy must exist
            # before the task runs its first TensorFlow op (the tokenizer, the data). The
            # trainer then gets this same strategy back.
            from keras_lm.training.strategy import create_strategy

            create_strategy("multi_worker", train_config.get("tpu"))
        task_module(config.get("task", "language_model")).train_and_report(config, workdir)
        return
    from keras_lm.tasks import workdir as workdir_lib

    task = task_module(workdir_lib.read_config(workdir).get("task", "language_model"))
    if command == "evaluate":
        metrics = task.evaluate(workdir, _SPLIT.value, _CHECKPOINT.value)
        print(f"{_SPLIT.value} @ step {metrics['step']}: {task.format_metrics(metrics)}")
    elif command == "generate":
        if _TEXT.value:  # sequence-to-sequence: one output line per --text
            if _PROMPT.value:
                raise app.UsageError("generate takes --prompt (language models) or --text "
                                     "(sequence-to-sequence), not both.")
            # Sampling only when asked for: the task's default is greedy decoding.
            sampling = {name: flag.value for name, flag in (
                ("temperature", _TEMPERATURE), ("top_k", _TOP_K), ("top_p", _TOP_P))
                if flag.present}
            outputs = task.generate(
                workdir, _TEXT.value, which=_CHECKPOINT.value, beam_size=_BEAM_SIZE.value,
                length_penalty=_LENGTH_PENALTY.value, seed=_SEED.value,
                stop_strings=_STOP.value,
                max_new_tokens=_MAX_NEW_TOKENS.value,
                **sampling)
            for output in outputs:
                print(output)
            return
        if not _PROMPT.value:
            raise app.UsageError("generate needs --prompt=TEXT (language models) or --text=TEXT "
                                 "(sequence-to-sequence); repeat it for a batch.")
        texts = task.generate(
            workdir, _PROMPT.value, max_new_tokens=_MAX_NEW_TOKENS.value,
            which=_CHECKPOINT.value, temperature=_TEMPERATURE.value, top_k=_TOP_K.value,
            top_p=_TOP_P.value, seed=_SEED.value, stop_strings=_STOP.value,
            truncate=_TRUNCATE.value)
        for prompt, text in zip(_PROMPT.value, texts):
            print(prompt + text)
    elif command == "predict":
        if not hasattr(task, "predict"):
            raise app.UsageError("This workdir's task has no predict (classification, tagging "
                                 "and question_answering do).")
        if not _TEXT.value and _QUESTION.value is None:
            raise app.UsageError("predict needs --text=TEXT [--text_pair=TEXT], or "
                                 "--question=TEXT --context=TEXT.")
        if _TEXT.value and len(_TEXT.value) > 1:
            raise app.UsageError("predict takes one --text (and at most one --text_pair).")
        text = _TEXT.value[0] if _TEXT.value else None
        print(task.predict(workdir, text=text, text_pair=_TEXT_PAIR.value,
                           question=_QUESTION.value, context=_CONTEXT.value,
                           which=_CHECKPOINT.value))
    elif command == "export":
        if not hasattr(task, "export"):
            raise app.UsageError(f"Task module {task.__name__} has no export.")
        print(task.export(workdir, _EXPORT_DIR.value, version=_VERSION.value,
                          overwrite=_OVERWRITE.value, which=_CHECKPOINT.value))


def check_config_overrides(argv):
    """Fails early, listing the valid fields, when a --config.a.b override names no field.

    ml_collections would raise an AttributeError with a traceback from inside flag parsing.
    Reads the config file from --config=PATH or --config PATH; a missing file is an error
    here too (ml_collections would defer it to a traceback on first use).
    """
    config_path = None
    overrides = []
    args = argv[1:]
    for i, arg in enumerate(args):
        if arg == "--":  # absl: the rest are positional arguments
            break
        if re.fullmatch(r"--?config", arg) and i + 1 < len(args):  # --config PATH
            config_path = args[i + 1]
        elif re.match(r"--?config=", arg):  # --config=PATH
            config_path = arg.split("=", 1)[1]
        else:  # --config.a.b=value, --config.a.b value, --[no]config.a.b (booleans)
            match = re.match(r"--?(?:no)?config\.([^=]+)", arg)
            if match:
                overrides.append(match.group(1))
    if config_path is None:
        return
    # A config path may carry an argument for get_config: --config=configs/NAME.py:ARG.
    path, *config_args = config_path.split(":", 1)
    if not os.path.isfile(path):
        raise app.UsageError(f"Config file not found: --config={config_path}")
    if not overrides:
        return
    config = runpy.run_path(path)["get_config"](*config_args)
    for override in overrides:
        node, walked = config, []
        for part in override.split("."):
            keys = list(node.keys()) if hasattr(node, "keys") else []
            if part not in keys:
                where = ".".join(["config"] + walked)
                raise app.UsageError(
                    f"Unknown config field '{override}' in --config.{override}: {where} has no "
                    f"field '{part}'. Valid fields of {where}: {sorted(keys)}."
                )
            node, walked = node[part], walked + [part]


def _parse_flags(argv):
    """absl's flag parsing, with a mistake reported on one line, as main() reports errors.

    An unknown flag, a bad value or a misspelt --config override prints
    `keras-lm COMMAND: error: ...` and exits with status 1 (absl's status for flag errors),
    instead of a traceback from inside the parser.
    """
    try:
        check_config_overrides(argv)
        return flags.FLAGS(argv)
    except (flags.Error, app.UsageError) as error:
        message = str(error)
    except (AttributeError, KeyError) as error:
        # ml_collections' report of a bad --config.a.b override, should one get past
        # check_config_overrides: AttributeError(KeyError("'b'\nDid you mean ...")).
        while len(error.args) == 1 and isinstance(error.args[0], BaseException):
            error = error.args[0]
        message = " ".join(str(error.args[0] if len(error.args) == 1 else error).split())
    command = next((arg for arg in argv[1:] if arg in COMMANDS), "")
    print(f"keras-lm {command}: error: {message}", file=sys.stderr)
    sys.exit(1)


def run():
    """Console-script entry point (`keras-lm`)."""
    app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
