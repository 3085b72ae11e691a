"""memo: memorization experiments in machine learning."""

from memo import _moved

_moved.install()
