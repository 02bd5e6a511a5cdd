"""`python -m keras_lm ...` is the `keras-lm` command."""

from keras_lm.main import run

if __name__ == "__main__":
    run()
