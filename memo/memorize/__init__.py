"""The constructive memorization algorithm's fast forms (root algorithm.py is the reference
and the user's entry): ``bitset`` (numba-compiled popcounts for threshold units on the
CPU, kernels in ``bitset_kernels``) and ``fast`` (vectorized numpy/torch otherwise)."""
