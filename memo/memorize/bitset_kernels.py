"""numba kernels of memo/memorize/bitset.py (imported on the first threshold fit: numba loads slowly)."""

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

BIG = np.int64(2**62)  # larger than any count


@intrinsic
def _popcount(typingctx, x):
    """LLVM's ctpop: the CPU's popcount instruction where it has one."""

    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)])
        return builder.call(fn, args)

    return types.uint64(types.uint64), codegen


@numba.njit(cache=True, nogil=True)
def pack_signs(Z, positions, bits):
    """bits[positions[r]] = the bits of Z[r] > 0 (bit i of word w: unit 64 w + i)."""
    n = Z.shape[1]
    full = n // 64
    for r in range(Z.shape[0]):
        p = positions[r]
        for w in range(full):  # fixed, branch-free loops: twice as fast as with an if
            word = np.uint64(0)
            for i in range(64):
                word |= np.uint64(Z[r, 64 * w + i] > 0) << np.uint64(i)
            bits[p, w] = word
        if 64 * full < n:
            word = np.uint64(0)
            for i in range(n - 64 * full):
                word |= np.uint64(Z[r, 64 * full + i] > 0) << np.uint64(i)
            bits[p, full] = word


@numba.njit(cache=True, nogil=True)
def _count(A, q, B, j):
    """popcount(A[q] & B[j]) over all words: a fixed loop that LLVM vectorizes."""
    s = 0
    for w in range(A.shape[1]):
        s += _popcount(A[q, w] & B[j, w])
    return s


@numba.njit(cache=True, nogil=True)
def _mins(bits, start, stop, U, nb, best):
    """best[j] = min(best[j], min over rows [start, stop) of popcount(row & U[j]))."""
    for q in range(start, stop):
        for j in range(nb):
            s = _count(bits, q, U, j)
            if s < best[j]:
                best[j] = s


@numba.njit(cache=True, nogil=True)
def cover_class(bits, lo, hi, candidates, limit, first_block, max_block):
    """The covering of positions [lo, hi) against all others; see bitset.cover.

    Returns (accepted indices into candidates, their m, [tried, rejected, covered, K]).
    """
    P, words = bits.shape
    covered = np.zeros(hi - lo, dtype=np.bool_)
    open_ = np.arange(lo, hi)  # positions not yet covered, compacted after each block
    n_open = hi - lo
    accepted = np.empty(len(candidates), dtype=np.int64)
    m_out = np.empty(len(candidates), dtype=np.int64)
    K = tried = rejected = 0
    U = np.empty((max_block, words), dtype=np.uint64)
    best = np.empty(max_block, dtype=np.int64)
    index = np.empty(max_block, dtype=np.int64)
    hit = np.empty(max_block, dtype=np.bool_)
    new = np.empty(max_block, dtype=np.int64)
    pos = 0
    size = first_block
    while tried < limit:
        # [Lines 3-4] The next uncovered candidates of the permutation.
        nb = 0
        while nb < min(size, limit - tried) and pos < len(candidates):
            if not covered[candidates[pos] - lo]:
                index[nb] = pos
                nb += 1
            pos += 1
        if nb == 0:
            break
        # [Line 5] u: the units inactive at the candidate; m: the min over the other classes.
        for j in range(nb):
            for w in range(words):
                U[j, w] = ~bits[candidates[index[j]], w]
            best[j] = BIG
        _mins(bits, 0, lo, U, nb, best)
        _mins(bits, hi, P, U, nb, best)
        # Accept one by one; one covered by an earlier neuron of the block is skipped.
        hit[:nb] = False
        skipped = n_new = 0
        for j in range(nb):
            if hit[j]:
                skipped += 1
                continue
            tried += 1
            if best[j] > 0:  # [Line 6]
                accepted[K] = index[j]
                m_out[K] = best[j]
                K += 1
                new[n_new] = j
                n_new += 1
                for i in range(j + 1, nb):
                    if not hit[i]:
                        hit[i] = _count(bits, candidates[index[i]], U, j) < best[j]
            else:
                rejected += 1
        # [Lines 7-8] The new neurons cover the open points with <u, h(x)> < m.
        if n_new:
            keep = 0
            for t in range(n_open):
                q = open_[t]
                on = False
                for a in range(n_new):
                    j = new[a]
                    if _count(bits, q, U, j) < best[j]:
                        on = True
                        break
                if on:
                    covered[q - lo] = True
                else:
                    open_[keep] = q
                    keep += 1
            n_open = keep
        if skipped <= nb // 8:
            size = min(2 * size, max_block)
        elif skipped > nb // 3:
            size = max(1, size // 2)
    return accepted, m_out, np.array([tried, rejected, (hi - lo) - n_open, K])
