"""The fast form's covering for ReLU and on torch devices: blocks of candidates, one product each.

(Threshold fits on the CPU use memo/memorize/bitset.py: compiled popcounts on packed bits.)

The reference form draws one candidate, sums its mask over all N rows, and repeats.
Here the next B candidates of the same random order are evaluated together:
``S = H[rows] @ U.T`` gives ``<u_j, h(x)>`` for B masks u_j at once, chunk by chunk of
rows, and the candidates are then accepted one by one from those columns exactly as the
reference would (a candidate that an earlier one in its block covers is skipped, as the
reference skips it). The min runs over the other classes only, the coverage update over
the class's uncovered points only. B adapts: it doubles while few candidates of a block
are skipped and halves when many are.

Exactness. A neuron's threshold m is the minimum of ``<u, h(x)>`` over the other classes,
and the network must reproduce those sums bit for bit (algorithm._inner). With the
threshold the sums are integers below 2**24, exact in float32 in any order, so the
matrix product *is* the canonical sum. With ReLU a product's sum may differ from the
canonical one (numpy's pairwise sum) by at most ``E = 4 n u max_x Σ h(x)`` (u = 2**-24,
both errors bounded by γ_n Σ|terms| for any summation order). So every decision is made
from the product where it is clear by more than E, and from the canonical sum
(``inner``, algorithm._inner) for the few (row, mask) pairs within E of the threshold:
the fast form then makes the very decisions the reference makes.

Storage. Threshold activations are kept as bits, one row per distinct pattern (N * n / 8
bytes at most), unpacked chunk by chunk for the products. ReLU activations are kept as
float32 (they are reals). With a torch ``device`` the products run there (float32 for the
threshold, exact on 0/1 values also with TF32; float64 for ReLU); torch is imported only then.
"""

import os
import sys

import numpy as np

U32 = 2.0**-24  # unit roundoff of float32
CHUNK = 2**19  # values in one (rows, n) chunk of unpacked activations: 2 MiB of float32
FIRST_BLOCK = 4  # candidates in the first block of a class
MAX_BLOCK = 512  # candidates in one block at most


def torch_device(device: str) -> str | None:
    """The torch device that ``device`` asks for, or None for numpy on the CPU.

    "cpu": no torch (memo/memorize/bitset.py for the threshold, numpy for ReLU). "auto": "cuda" if
    torch sees a GPU, else as "cpu"; on Linux torch is only
    imported to ask when an NVIDIA driver is loaded. "cuda", "cuda:1": torch on that GPU.
    "torch-cpu": torch on the CPU (to exercise the torch path without a GPU).

    >>> torch_device("cpu") is None, torch_device("torch-cpu")
    (True, 'cpu')
    """
    if device == "cpu":
        return None
    if device == "torch-cpu":
        return "cpu"
    if device == "auto":
        return "cuda" if _cuda_available() else None
    if device.startswith("cuda"):
        if not _cuda_available():
            raise ValueError(f"device {device!r}: torch sees no CUDA GPU here; use 'auto' or 'cpu'")
        return device
    raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'torch-cpu', got {device!r}")


def _cuda_available() -> bool:
    if sys.platform.startswith("linux") and not os.path.exists("/proc/driver/nvidia/version"):
        return False  # no NVIDIA driver: no CUDA, and no need to import torch to know
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


class Activations:
    """First-layer activations of the training points, stored for the covering.

    blocks: iterable of (row slice, (rows, n) float32 activations) covering rows 0..N-1,
    as Network.hidden_blocks yields them; for the threshold only their sign is read, so
    pre-activations will do. activation: "thres" or "relu". groups: (N,) labels.
    device: a torch device, or None for numpy.

    Rows are stored once per distinct threshold pattern (``at[row]`` is a row's
    position): 1M two-moons points make ~16k patterns at n = 1000, and points with one
    pattern have the same sums. Positions are sorted by label, so that a class and the
    rest are runs of positions, read as views rather than copies.
    """

    def __init__(self, blocks, N: int, n: int, activation: str, groups, device=None):
        self.N, self.n, self.activation = N, n, activation
        self.exact = activation == "thres"  # integer sums: the products are exact
        self.words = (n + 63) // 64  # threshold bits, 64 units a word, zero padded
        groups = np.asarray(groups)
        if self.exact:
            packed = np.zeros((N, 8 * self.words), dtype=np.uint8)
            bits = packed.view(np.uint64)
            hashes = np.empty(N, dtype=np.uint64)
            for rows, H in blocks:
                packed[rows, : (n + 7) // 8] = np.packbits(H > 0, axis=1)
                hashes[rows] = _hash(bits[rows])  # while the block is in cache
            first, of_row = _distinct(bits, hashes)
            order = np.lexsort((first, groups[first]))  # by label, then first occurrence
            self.bits = bits[first[order]]
            self.at = np.argsort(order)[of_row]
            self.E = 0.0
            self.F = None
        else:
            order = np.argsort(groups, kind="stable")
            self.at = np.argsort(order)
            self.F = np.empty((N, n), dtype=np.float32)
            rowsum_max = 0.0
            for rows, H in blocks:
                self.F[self.at[rows]] = H
                rowsum_max = max(rowsum_max, float(H.sum(axis=1, dtype=np.float64).max()))
            # Bound on |product - canonical sum| for any (row, mask): module docstring.
            self.E = 4 * n * U32 * rowsum_max
        self.P = len(self.bits) if self.exact else N  # stored positions
        self.ops = _NumpyOps(self) if device is None else _TorchOps(self, device)

    def rows(self, idx) -> np.ndarray:
        """(len(idx), n) float32 activations at positions idx (0/1 for the threshold)."""
        idx = _run(idx)
        if self.F is not None:
            return self.F[idx]
        return _unpack(self.bits[idx], self.n).astype(np.float32)

    def masks(self, idx) -> np.ndarray:
        """(len(idx), n) bool: u of each position, the units inactive there [Line 5]."""
        return self.rows(idx) == 0

    def min_over(self, idx, U, inner) -> np.ndarray:
        """(len(U),) float32: the canonical min of <u, h(x)> over the positions idx, per mask."""
        approx, band_rows, band_cols = self.ops.min_over(idx, U, self.E)
        if self.exact:
            return approx.astype(np.float32)
        out = np.empty(len(U), dtype=np.float32)
        for j in range(len(U)):
            # Only rows within 2E of the product's min can hold the canonical min.
            rows = band_rows[band_cols == j]
            out[j] = inner(self.F[rows], U[j][None])[:, 0].min()
        return out

    def any_below(self, idx, U, m, inner) -> np.ndarray:
        """(len(idx),) bool: whether <u_j, h(x)> < m_j, canonically, for some j, per position."""
        sure, rows, cols = self.ops.below(idx, U, m, self.E)
        if rows.size:  # a row may appear once per mask: set, don't |= with repeats
            sure[rows[_resolve(self.F, idx[rows], cols, U, m, inner)]] = True
        return sure

    def below(self, idx, U, m, inner) -> np.ndarray:
        """(len(idx), len(U)) bool: <u_j, h(x)> < m_j canonically, on the CPU (small sets)."""
        return below(self.rows(idx), U, m, self.exact, inner)


def _hash(bits) -> np.ndarray:
    """A 64-bit hash of each row of bits (uint64 words)."""
    h = np.zeros(len(bits), dtype=np.uint64)
    for w in range(bits.shape[1]):
        h ^= bits[:, w] * _MIX[w % len(_MIX)]
        h = (h << np.uint64(7)) | (h >> np.uint64(57))
    return h


_MIX = np.random.default_rng(0).integers(1, 2**63, 64, dtype=np.uint64) | np.uint64(1)


def _distinct(bits, hashes):
    """(first row of each distinct row of bits, each row's index into those), exactly.

    Rows are grouped by their hash and checked against their group's first row; on a
    collision (odds ~N²/2**65) it sorts the rows themselves. When most rows are distinct
    (hashes say so) every row is kept as it is, which needs no check.
    """
    _, first, of_row = np.unique(hashes, return_index=True, return_inverse=True)
    if 2 * len(first) > len(bits):
        return np.arange(len(bits)), np.arange(len(bits))
    of_row = of_row.reshape(-1)
    reps = bits[first]
    step = max(1, CHUNK // bits.shape[1])
    same = all(
        (bits[i : i + step] == reps[of_row[i : i + step]]).all() for i in range(0, len(bits), step)
    )
    if not same:
        rows = np.ascontiguousarray(bits).view(np.dtype((np.void, 8 * bits.shape[1])))[:, 0]
        _, first, of_row = np.unique(rows, return_index=True, return_inverse=True)
    return first, of_row.reshape(-1)


def _run(idx):
    """idx as a slice if it is a run of consecutive positions (a view, not a copy)."""
    if len(idx) and idx[-1] - idx[0] == len(idx) - 1 and (np.diff(idx) == 1).all():
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx


def below(H, U, m, exact: bool, inner) -> np.ndarray:
    """(len(H), len(U)) bool: ``<u_j, h> < m_j`` with the canonical sums of ``inner``.

    H: (R, n) float32 activations; U: (K, n) bool; m: (K,) float32. exact: H holds 0/1
    values, so the float32 product is the canonical sum (see the module docstring).
    The same as ``m - inner(H, U) > 0`` (for floats, ``m - s > 0`` iff ``s < m``).
    """
    S = H @ U.T.astype(np.float32)
    if exact:
        return S < m
    E = 4 * H.shape[1] * U32 * float(H.sum(axis=1, dtype=np.float64).max(initial=0))
    m64 = m.astype(np.float64)
    out = S < m64 - E
    rows, cols = np.nonzero((S >= m64 - E) & (S < m64 + E))
    if rows.size:
        out[rows, cols] = _resolve(H, rows, cols, U, m, inner)
    return out


def _resolve(H, rows, cols, U, m, inner) -> np.ndarray:
    """Canonical ``<u_col, h_row> < m_col`` for (row, col) pairs, one mask at a time."""
    out = np.empty(len(rows), dtype=bool)
    for j in np.unique(cols):
        pick = np.flatnonzero(cols == j)
        out[pick] = inner(H[rows[pick]], U[j][None])[:, 0] < m[j]
    return out


class _NumpyOps:
    """The products on the CPU with numpy, chunk by chunk of rows."""

    def __init__(self, acts: Activations):
        self.acts = acts
        self.step = max(64, CHUNK // acts.n)

    def _products(self, idx, U):
        acts = self.acts
        Ut = U.T.astype(np.float32)
        for start in range(0, len(idx), self.step):
            yield start, acts.rows(idx[start : start + self.step]) @ Ut

    def min_over(self, idx, U, E):
        best = np.full(len(U), np.inf)
        band = []
        for start, S in self._products(idx, U):
            best = np.minimum(best, S.min(axis=0))
            if E:  # rows that may hold the canonical min; refined below
                r, c = np.nonzero(S <= best + 2 * E)
                band.append((idx[start + r], c, S[r, c]))
        return best, *_band(band, best, E)

    def below(self, idx, U, m, E):
        m64 = m.astype(np.float64)
        sure = np.zeros(len(idx), dtype=bool)
        unsure_r, unsure_c = [], []
        for start, S in self._products(idx, U):
            sure[start : start + len(S)] = (S < m64 - E).any(axis=1)
            if E:
                r, c = np.nonzero((S >= m64 - E) & (S < m64 + E))
                unsure_r.append(start + r)
                unsure_c.append(c)
        return sure, *_pairs(unsure_r, unsure_c)


class _TorchOps:
    """The products in torch on ``device``; activations copied there once per fit."""

    def __init__(self, acts: Activations, device: str):
        import torch

        self.torch, self.device = torch, torch.device(device)
        self.dtype = torch.float32 if acts.exact else torch.float64
        big = self.device.type == "cuda"
        self.step = max(64, (CHUNK * (64 if big else 1)) // acts.n)
        if acts.exact:  # 0/1 as uint8 (n bytes a row), made float one chunk at a time
            self.A = torch.empty((acts.P, acts.n), dtype=torch.uint8, device=self.device)
            for start in range(0, acts.P, self.step):
                part = acts.rows(np.arange(start, min(start + self.step, acts.P)))
                self.A[start : start + len(part)] = torch.from_numpy(part).to(self.device)
        else:
            self.A = torch.from_numpy(acts.F).to(self.device)

    def _products(self, idx, U):
        torch = self.torch
        Ut = torch.from_numpy(U.T.copy()).to(self.device, self.dtype)
        idx_t = torch.from_numpy(np.ascontiguousarray(idx, dtype=np.int64)).to(self.device)
        for start in range(0, len(idx), self.step):
            yield start, self.A[idx_t[start : start + self.step]].to(self.dtype) @ Ut

    def min_over(self, idx, U, E):
        torch = self.torch
        best = torch.full((len(U),), float("inf"), dtype=torch.float64, device=self.device)
        band = []
        for start, S in self._products(idx, U):
            S = S.double()
            best = torch.minimum(best, S.min(dim=0).values)
            if E:
                r, c = torch.nonzero(S <= best + 2 * E, as_tuple=True)
                band.append((idx[start + r.cpu().numpy()], c.cpu().numpy(), S[r, c].cpu().numpy()))
        best = best.cpu().numpy()
        return best, *_band(band, best, E)

    def below(self, idx, U, m, E):
        torch = self.torch
        m64 = torch.from_numpy(m.astype(np.float64)).to(self.device)
        sure = np.zeros(len(idx), dtype=bool)
        unsure_r, unsure_c = [], []
        for start, S in self._products(idx, U):
            S = S.double()
            sure[start : start + len(S)] = (S < m64 - E).any(dim=1).cpu().numpy()
            if E:
                r, c = torch.nonzero((S >= m64 - E) & (S < m64 + E), as_tuple=True)
                unsure_r.append(start + r.cpu().numpy())
                unsure_c.append(c.cpu().numpy())
        return sure, *_pairs(unsure_r, unsure_c)


def _unpack(bits, n: int) -> np.ndarray:
    """(R, n) uint8 0/1 from packbits' words."""
    return np.unpackbits(bits.view(np.uint8), axis=1, count=n)


def _band(band, best, E):
    """(rows, cols) of the collected pairs whose product is within 2E of the final min."""
    if not E:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    rows, cols, vals = (np.concatenate(parts) for parts in zip(*band))
    keep = vals <= best[cols] + 2 * E
    return rows[keep], cols[keep]


def _pairs(rows, cols):
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(rows), np.concatenate(cols)


def cover(acts: Activations, in_class, rng, inner, max_tried=None):
    """[Lines 2-11] algorithm._cover on blocks of candidates; the same network for the same rng.

    acts: the training activations; in_class: (N,) bool; rng: the class's Generator;
    inner: the canonical sum (algorithm._inner); max_tried: stop after so many candidates.
    Returns U (K, n) bool, m (K,) float32, centers (K,) int, tried, rejected and the
    number of the class's points covered, like algorithm._cover.
    """
    own_rows = np.flatnonzero(in_class)  # the reference's candidates, in its order
    own = acts.at[own_rows]  # their positions (repeats: points with one pattern)
    other = np.unique(acts.at[~in_class])
    covered = np.zeros(acts.P, dtype=bool)  # by position: a pattern is covered or not
    known = {}  # position -> m of a rejected candidate; its twins are rejected alike
    # [Lines 3-4] The same random order as the reference; covered points are skipped.
    order = rng.permutation(len(own_rows))
    U_out, m_out, centers = [], [], []
    tried = rejected = 0
    pos, size = 0, FIRST_BLOCK
    limit = len(own_rows) if max_tried is None else max_tried
    while tried < limit:
        take, pos = _next_candidates(order, covered[own], pos, min(size, limit - tried))
        if not take.size:
            break
        # [Line 5] u and m over the other classes for each new pattern in the block.
        cand, back = np.unique(own[take], return_inverse=True)
        fresh = np.array([p not in known for p in cand.tolist()], dtype=bool)
        U = acts.masks(cand)
        m = np.empty(len(cand), dtype=np.float32)
        m[~fresh] = [known[p] for p in cand[~fresh].tolist()]
        if fresh.any():
            m[fresh] = acts.min_over(other, U[fresh], inner)
        covers = acts.below(cand, U, m, inner)  # [i, j]: neuron j would cover pattern i
        hit = np.zeros(len(cand), dtype=bool)
        accepted, skipped = [], 0
        for i, j in enumerate(back.tolist()):
            if hit[j]:  # covered by an earlier neuron of this block: the reference skips it
                skipped += 1
                continue
            tried += 1
            # [Line 6] Accept iff m > 0; [Lines 7-8] it covers what has <u, h> < m.
            if m[j] > 0:
                accepted.append(j)
                centers.append(own_rows[take[i]])
                hit |= covers[:, j]
            else:
                rejected += 1
                known[int(cand[j])] = m[j]
        if accepted:
            U_out.append(U[accepted])
            m_out.append(m[accepted])
            open_ = np.unique(own[~covered[own]])
            covered[open_] = acts.any_below(open_, U[accepted], m[accepted], inner)
        # Double the block while few candidates are skipped, halve it when many are.
        if skipped <= len(take) // 8:
            size = min(2 * size, MAX_BLOCK)
        elif skipped > len(take) // 3:
            size = max(1, size // 2)
    return (
        np.concatenate(U_out) if U_out else np.zeros((0, acts.n), dtype=bool),
        np.concatenate(m_out) if m_out else np.zeros(0, dtype=np.float32),
        np.array(centers, dtype=np.int64),
        tried,
        rejected,
        int(covered[own].sum()),
    )


def _next_candidates(order, covered, pos, size):
    """The next ``size`` entries k of ``order`` from ``pos`` with covered[k] False, and the new pos."""
    take = []
    while len(take) < size and pos < len(order):
        window = order[pos : pos + max(4 * size, 256)]
        free = np.flatnonzero(~covered[window])[: size - len(take)]
        take.extend(window[free])
        pos = pos + int(free[-1]) + 1 if len(take) == size else pos + len(window)
    return np.array(take, dtype=np.int64), pos
