"""memo: memorization experiments in machine learning."""
