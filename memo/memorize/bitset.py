"""The threshold covering on the CPU: first-layer activations as bits, compiled with numba.

A threshold unit's activation is 0 or 1, so a training point's first-layer output h(x) is a
bit string and ``<u, h(x)>`` is ``popcount(h(x) & u)``, an integer: exact in any order, the
same value the reference's float32 sum gives. Rows are stored as 64-bit words (N n / 8
bytes) and counted whole, a fixed loop that LLVM vectorizes (with AVX-512's vector
popcount where the CPU has it); stopping a row's count once it passes the best so far
made the loop branchy and was 2-8 times slower here, even with m far below the counts.

Candidates are drawn as in algorithm._cover (one random permutation, covered points
skipped) and evaluated a block at a time: each row of the other classes is read once per
block and counted against every mask of the block while it is in cache. They are then
accepted one by one as the reference would, a candidate covered by an earlier one of its
block being skipped. The block doubles while few are skipped and halves when many are.

The whole per-class loop is compiled (no Python per candidate), which is what small fits
(two moons, a few ms) need. Compiled code is cached in memo/__pycache__ (numba's
``cache=True``; elsewhere if that is read-only): the first fit after an install compiles
for about 3 CPU seconds, every later process loads the cache in about 0.5 (``load``).
"""

import numpy as np

FIRST_BLOCK = 4  # candidates in the first block of a class
MAX_BLOCK = 256  # candidates in one block at most ...
BLOCK_BYTES = 2**17  # ... and at most this many bytes of their masks (they stay in cache)


def covering(blocks, y, n: int, max_tried=None):
    """A function ``(in_class, rng) -> algorithm._cover's result`` on packed activations.

    blocks: (row slice, (rows, n) float32 W x + b) covering every row of the training
    set, as Network.preactivation_blocks yields them; y: (N,) labels. in_class must be
    ``y == c`` for a label c. Rows are stored sorted by label, so a class is one run.
    """
    order = np.argsort(y, kind="stable")
    at = np.empty(len(y), dtype=np.int64)
    at[order] = np.arange(len(y))
    bits = pack(blocks, n, at)

    def run(in_class, rng):
        own = np.flatnonzero(in_class)
        # [Lines 3-4] The reference's random order of the class's points.
        perm = rng.permutation(len(own))
        lo, hi = int(at[own[0]]), int(at[own[-1]]) + 1
        assert hi - lo == len(own), "in_class must be one label's points"
        candidates = at[own][perm]
        accepted, m, tried, rejected, covered = cover(bits, lo, hi, candidates, max_tried)
        U = masks(bits, candidates[accepted], n)
        return U, m, own[perm[accepted]], tried, rejected, covered

    return run


def pack(blocks, n: int, at) -> np.ndarray:
    """(N, words) uint64: the sign bits of the pre-activation blocks, row r at ``at[r]``.

    A unit is active iff its pre-activation is > 0 (σ(0) = 0). Padding bits are 0.
    """
    bits = np.zeros((len(at), (n + 63) // 64), dtype=np.uint64)
    kernels = load()
    for rows, Z in blocks:
        kernels.pack_signs(Z, at[rows], bits)
    return bits


def masks(bits, positions, n: int) -> np.ndarray:
    """(len(positions), n) bool: u of each position, the units inactive there [Line 5]."""
    raw = np.ascontiguousarray(bits[positions]).view(np.uint8)
    # pack_signs sets bit i of a word for unit 64 w + i; unpack little-endian.
    return np.unpackbits(raw, axis=1, count=n, bitorder="little") == 0


def cover(bits, lo: int, hi: int, candidates, max_tried=None):
    """[Lines 2-11] The covering of the class stored at positions [lo, hi), as algorithm._cover.

    candidates: the class's positions in the reference's random order. Returns
    (accepted: indices into candidates of the neurons' centres, m: (K,) float32,
    tried, rejected, covered: the number of the class's positions covered).
    """
    limit = len(candidates) if max_tried is None else min(max_tried, len(candidates))
    max_block = max(1, min(MAX_BLOCK, BLOCK_BYTES // (8 * bits.shape[1])))
    accepted, m, counts = load().cover_class(
        bits,
        lo,
        hi,
        np.ascontiguousarray(candidates, dtype=np.int64),
        limit,
        min(FIRST_BLOCK, max_block),
        max_block,
    )
    tried, rejected, covered, K = (int(c) for c in counts)
    return accepted[:K], m[:K].astype(np.float32), tried, rejected, covered


_compiled = None


def load():
    """The compiled kernels. The first call imports numba and loads (or compiles) them:
    about half a CPU second, once per process; call it before timing a fit."""
    global _compiled
    if _compiled is None:
        from memo.memorize import bitset_kernels as kernels

        # numba loads a kernel on its first call: call each once, with the fit's types.
        bits = np.zeros((2, 1), dtype=np.uint64)
        kernels.pack_signs(np.ones((1, 1), dtype=np.float32), np.zeros(1, dtype=np.int64), bits)
        kernels.cover_class(bits, 0, 1, np.zeros(1, dtype=np.int64), 1, 1, 1)
        _compiled = kernels
    return _compiled
