"""Re-ID retrieval metrics: CMC and mAP under the Market-1501 protocol (and CUHK03 single gallery shot).

Protocol (as torchreid's ``eval_market1501`` / fast-reid): each query ranks the gallery by distance;
gallery images with the query's pid AND camera are removed, and so is junk (pid -1) for every
query; distractors (pid 0) stay as ordinary non-matches. Queries left with no true match are
skipped and counted. CMC at rank k is the fraction of valid queries whose first true match lies
in the top k (always ``max_rank`` long: ranks past a short gallery keep the last value, where
torchreid shortens the curve); AP is the mean of precision at each true match's position, over
all remaining true matches; mAP averages AP over valid queries.

Ties: rankings follow a STABLE sort of distances, so equal distances are broken by gallery index
(lower index first), in both implementations. ``evaluate`` never sorts a row: a true match's rank
is the number of kept images before it in that order. Only images no farther than the query's
farthest true match can be before one; those are gathered, counted with a monotone histogram of
their distances, and ordered exactly only inside the bins holding a true match.

``evaluate`` (torch, chunked over queries, vectorised within a block of queries, CPU or CUDA) is
the fast path; ``evaluate_reference`` is the plain per-query NumPy loop it is tested against.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

METRICS = ("cosine", "euclidean")
# Distances (queries x gallery) ranked per block: bounds the block's temporaries (16 MiB of float32).
_BLOCK_ELEMENTS = 1 << 22
# Above this share of a block's distances needed for ranking, bin the block in place instead of gathering.
_DENSE_FRACTION = 0.25


@dataclass(frozen=True, eq=False)
class ReIDMetrics:
    """mAP and CMC (fractions in [0, 1]) over the valid queries; ``cmc[k - 1]`` is rank-k accuracy."""

    mAP: float
    cmc: np.ndarray  # (max_rank,)
    num_valid_queries: int
    num_skipped: int

    def rank(self, k: int) -> float:
        """CMC accuracy at rank ``k`` (1-based)."""
        if not 1 <= k <= len(self.cmc):
            raise ValueError(f"rank must lie in [1, {len(self.cmc)}] (max_rank), got {k}")
        return float(self.cmc[k - 1])

    def as_dict(self) -> dict[str, float]:
        """mAP, R1, R5, R10 in percent (ranks beyond max_rank are left out)."""
        out = {"mAP": 100.0 * self.mAP}
        out.update({f"R{k}": 100.0 * self.rank(k) for k in (1, 5, 10) if k <= len(self.cmc)})
        return out


def flip_average(features, flipped_features) -> torch.Tensor:
    """Mean of the features of an image and of its horizontal flip, L2-normalised."""
    a, b = torch.as_tensor(features), torch.as_tensor(flipped_features)
    if a.shape != b.shape:
        raise ValueError(f"features {tuple(a.shape)} and flipped features {tuple(b.shape)} differ in shape: "
                         "extract both from the same images")
    return F.normalize((a + b) / 2, dim=-1)


def pairwise_distance(query_features, gallery_features, metric: str = "cosine", *, chunk_size: int | None = None,
                      memory_budget_mib: float = 256.0) -> torch.Tensor:
    """(Q, G) distances: ``1 - cos`` of L2-normalised features, or squared Euclidean (not clamped at 0).

    Computed in the same query chunks as ``evaluate`` with the same arguments, so bit-identical
    to what it ranks (BLAS may round differently for other chunk shapes, in the last bit).
    """
    q, g = _prepare_features(query_features, gallery_features, metric, None)
    rows = _chunk_rows(len(q), len(g), q.element_size(), chunk_size, memory_budget_mib)
    out = torch.empty(len(q), len(g), dtype=q.dtype, device=q.device)
    for _ in _distance_blocks(q, g, metric, rows, rows, out=out):
        pass
    return out


def evaluate(query_features, gallery_features, query_pids, gallery_pids, query_camids, gallery_camids, *,
             metric: str = "cosine", max_rank: int = 10, junk_pids: Sequence[int] = (-1,),
             single_gallery_shot: bool = False, num_repeats: int = 10, seed: int = 0,
             memory_budget_mib: float = 256.0, chunk_size: int | None = None,
             device: str | torch.device | None = None) -> ReIDMetrics:
    """CMC and mAP from features; distances are computed chunk by chunk and never held in full.

    ``chunk_size`` queries are handled per chunk (default: as many as keep the chunk's distance
    matrix under ``memory_budget_mib``). ``device`` defaults to the query features' device.
    ``single_gallery_shot`` selects the CUHK03 protocol (see ``evaluate_reference``).
    """
    _check_options(max_rank, num_repeats)
    q, g = _prepare_features(query_features, gallery_features, metric, device)
    labels = _Labels.build(len(q), len(g), query_pids, gallery_pids, query_camids, gallery_camids, junk_pids)
    rows = _chunk_rows(len(q), len(g), q.element_size(), chunk_size, memory_budget_mib)
    block = _block_rows(len(g), rows, labels, single_gallery_shot, num_repeats)
    return _accumulate(_distance_blocks(q, g, metric, rows, block), labels, q.device, max_rank,
                       single_gallery_shot, num_repeats, seed)


def evaluate_distmat(distmat, query_pids, gallery_pids, query_camids, gallery_camids, *, max_rank: int = 10,
                     junk_pids: Sequence[int] = (-1,), single_gallery_shot: bool = False, num_repeats: int = 10,
                     seed: int = 0, device: str | torch.device | None = None) -> ReIDMetrics:
    """``evaluate`` on a precomputed (Q, G) distance matrix (e.g. after re-ranking), moved block by block."""
    _check_options(max_rank, num_repeats)
    dist = torch.as_tensor(distmat)
    if dist.ndim != 2:
        raise ValueError(f"distmat must be 2-D (queries x gallery), got shape {tuple(dist.shape)}")
    dtype = torch.float64 if not dist.is_floating_point() else torch.promote_types(dist.dtype, torch.float32)
    device = torch.device(device) if device is not None else dist.device
    labels = _Labels.build(dist.shape[0], dist.shape[1], query_pids, gallery_pids, query_camids, gallery_camids,
                           junk_pids)
    block = _block_rows(dist.shape[1], dist.shape[0], labels, single_gallery_shot, num_repeats)
    # A fresh copy per block; + 0.0 turns -0.0 into +0.0 (equal distances, tied by index).
    blocks = ((a, (dist[a:a + block].to(device, dtype) + 0.0).contiguous()) for a in range(0, dist.shape[0], block))
    return _accumulate(blocks, labels, device, max_rank, single_gallery_shot, num_repeats, seed)


def evaluate_reference(distmat, query_pids, gallery_pids, query_camids, gallery_camids, *, max_rank: int = 10,
                       junk_pids: Sequence[int] = (-1,), single_gallery_shot: bool = False, num_repeats: int = 10,
                       seed: int = 0) -> ReIDMetrics:
    """Plain per-query NumPy loop (torchreid's Python ``eval_market1501`` / ``eval_cuhk03``), same semantics.

    Single gallery shot (CUHK03): per query and repeat, one kept gallery image per gallery pid
    (distractor pid 0 included) is drawn uniformly; CMC is averaged over ``num_repeats`` draws
    while AP uses the whole ranking, as in torchreid. The draw for pid p is its
    ``floor(u * n_p)``-th kept image in gallery-index order, with ``u`` read from
    ``np.random.default_rng(seed).random((R, P))`` per query in query order (P = gallery pids,
    sorted), so ``evaluate`` reproduces it exactly.
    """
    _check_options(max_rank, num_repeats)
    dist = np.asarray(distmat)
    if dist.ndim != 2:
        raise ValueError(f"distmat must be 2-D (queries x gallery), got shape {dist.shape}")
    labels = _Labels.build(dist.shape[0], dist.shape[1], query_pids, gallery_pids, query_camids, gallery_camids,
                           junk_pids)
    if np.isnan(dist).any():
        raise ValueError("distmat contains NaN: check the features it was computed from")
    g_pids, g_cams, junk = labels.gallery_pids, labels.gallery_camids, ~labels.gallery_keep
    rng = np.random.default_rng(seed)
    aps, cmcs, skipped = [], [], 0
    for i in range(dist.shape[0]):
        u = rng.random((num_repeats, len(labels.unique_pids))) if single_gallery_shot else None
        order = np.argsort(dist[i], kind="stable")
        q_pid, q_cam = labels.query_pids[i], labels.query_camids[i]
        order = order[~((g_pids[order] == q_pid) & (g_cams[order] == q_cam) | junk[order])]
        raw = g_pids[order] == q_pid
        if not raw.any():
            skipped += 1
            continue
        hits = np.cumsum(raw)
        aps.append(float(np.sum(hits[raw] / (np.flatnonzero(raw) + 1.0)) / hits[-1]))
        if single_gallery_shot:
            cmcs.append(np.mean([_cmc_curve(raw[_single_shot_mask(order, g_pids[order], labels, u[r])], max_rank)
                                 for r in range(num_repeats)], axis=0))
        else:
            cmcs.append(_cmc_curve(raw, max_rank))
    return _finish(sum(aps), np.sum(cmcs, axis=0) if cmcs else np.zeros(max_rank), len(aps), skipped)


# ---------------------------------------------------------------------------------------------
# Shared helpers


def _check_options(max_rank: int, num_repeats: int) -> None:
    if int(max_rank) != max_rank or max_rank < 1:
        raise ValueError(f"max_rank must be an integer >= 1, got {max_rank}")
    if int(num_repeats) != num_repeats or num_repeats < 1:
        raise ValueError(f"num_repeats must be an integer >= 1, got {num_repeats}")


def _as_features(x, name: str, device) -> torch.Tensor:
    t = torch.as_tensor(x).detach()
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D (images x dims), got shape {tuple(t.shape)}")
    if len(t) == 0:
        raise ValueError(f"{name} are empty: pass at least one image")
    if not t.is_floating_point() or t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    if not torch.isfinite(t.sum()) and not torch.isfinite(t).all():  # one cheap pass in the common case
        raise ValueError(f"{name} contain NaN or inf: check the feature extractor's output")
    return t.to(device) if device is not None else t


def _prepare_features(query, gallery, metric: str, device) -> tuple[torch.Tensor, torch.Tensor]:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}: use one of {METRICS}")
    q = _as_features(query, "query features", device)
    g = _as_features(gallery, "gallery features", q.device)
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"query features have {q.shape[1]} dims but gallery features have {g.shape[1]}: "
                         "extract both with the same model")
    dtype = torch.promote_types(q.dtype, g.dtype)
    q, g = q.to(dtype), g.to(dtype)
    if metric == "cosine":
        q, g = F.normalize(q, dim=1), F.normalize(g, dim=1)
    return q, g


@dataclass
class _Labels:
    """Validated labels; pid groups index the full gallery and leave junk out."""

    query_pids: np.ndarray
    query_camids: np.ndarray
    gallery_pids: np.ndarray
    gallery_camids: np.ndarray
    gallery_keep: np.ndarray  # False for junk
    unique_pids: np.ndarray  # sorted non-junk gallery pids; group p = order[start[p]:start[p] + count[p]]
    order: np.ndarray  # non-junk gallery indices grouped by pid, ascending within a pid
    start: np.ndarray
    count: np.ndarray
    query_group: np.ndarray  # index into unique_pids, -1 where the query pid is absent from the gallery

    @classmethod
    def build(cls, num_query, num_gallery, q_pids, g_pids, q_cams, g_cams, junk_pids) -> "_Labels":
        if num_query == 0:
            raise ValueError("the query set is empty: pass at least one query image")
        if num_gallery == 0:
            raise ValueError("the gallery is empty: pass at least one gallery image")
        arrays = [_as_labels(x, name, n) for x, name, n in ((q_pids, "query_pids", num_query),
                                                           (q_cams, "query_camids", num_query),
                                                           (g_pids, "gallery_pids", num_gallery),
                                                           (g_cams, "gallery_camids", num_gallery))]
        q_pids, q_cams, g_pids, g_cams = arrays
        keep = ~np.isin(g_pids, np.asarray(junk_pids, dtype=np.int64))
        if not keep.any():
            raise ValueError(f"every gallery image is junk (pid in {tuple(junk_pids)}): nothing left to rank")
        kept = np.flatnonzero(keep)
        order = kept[np.argsort(g_pids[kept], kind="stable")]
        unique, start, count = np.unique(g_pids[order], return_index=True, return_counts=True)
        slot = np.minimum(np.searchsorted(unique, q_pids), len(unique) - 1)
        group = np.where(unique[slot] == q_pids, slot, -1)
        return cls(q_pids, q_cams, g_pids, g_cams, keep, unique, order, start, count, group)


def _as_labels(x, name: str, n: int) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if len(a) != n:
        raise ValueError(f"{name} has {len(a)} entries for {n} images: pass one label per image")
    if len(a) and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must be integers, got dtype {a.dtype}")
    return a.astype(np.int64)


def _cmc_curve(raw: np.ndarray, max_rank: int) -> np.ndarray:
    """Rank-1..max_rank hits of one ranked list (True = match); ranks past its end keep the last value."""
    cmc = np.minimum(np.cumsum(raw), 1)[:max_rank].astype(np.float64)
    return np.pad(cmc, (0, max_rank - len(cmc)), mode="edge")


def _single_shot_mask(order: np.ndarray, pids: np.ndarray, labels: _Labels, u: np.ndarray) -> np.ndarray:
    """One kept image per gallery pid (its floor(u * n)-th in gallery-index order) as a mask over the ranking."""
    mask = np.zeros(len(order), dtype=bool)
    for pid in np.unique(pids):
        positions = np.flatnonzero(pids == pid)
        positions = positions[np.argsort(order[positions], kind="stable")]
        k = min(int(np.floor(u[np.searchsorted(labels.unique_pids, pid)] * len(positions))), len(positions) - 1)
        mask[positions[k]] = True
    return mask


def _finish(ap_sum: float, cmc_sum: np.ndarray, num_valid: int, num_skipped: int) -> ReIDMetrics:
    if num_valid == 0:
        raise ValueError("no query has a true match in the gallery from another camera: check pids and camids")
    return ReIDMetrics(ap_sum / num_valid, np.asarray(cmc_sum, dtype=np.float64) / num_valid, num_valid, num_skipped)


# ---------------------------------------------------------------------------------------------
# Fast path


def _chunk_rows(num_query: int, num_gallery: int, itemsize: int, chunk_size, memory_budget_mib: float) -> int:
    """Queries per distance chunk: ``chunk_size``, or as many as fit ``memory_budget_mib``."""
    if chunk_size is not None:
        if int(chunk_size) != chunk_size or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer (queries per chunk), got {chunk_size}")
        return int(min(chunk_size, num_query))
    if not memory_budget_mib > 0:
        raise ValueError(f"memory_budget_mib must be positive, got {memory_budget_mib}")
    return int(max(1, min(num_query, memory_budget_mib * 2**20 / (num_gallery * itemsize))))


def _block_rows(num_gallery: int, rows: int, labels: _Labels, single_gallery_shot: bool, num_repeats: int) -> int:
    """Queries ranked together: few enough that the block's temporaries stay near the CPU caches."""
    block = _BLOCK_ELEMENTS // num_gallery
    if single_gallery_shot:
        block = min(block, _BLOCK_ELEMENTS // (num_repeats * len(labels.unique_pids)))
    return max(1, min(rows, block))


def _distance_blocks(q: torch.Tensor, g: torch.Tensor, metric: str, rows: int, block: int,
                     out: torch.Tensor | None = None) -> Iterator[tuple[int, torch.Tensor]]:
    """(first query, distances) per block of ``block`` queries; one GEMM per chunk of ``rows`` queries.

    The GEMM always writes into the same reused buffer (BLAS rounding can depend on where the
    output lies); a block's distances are formed from it element by element, into a reused block
    buffer or into the rows of ``out``, so they depend only on the chunking.
    """
    q, g_t = q.detach(), g.detach().T.contiguous()  # (D, G): the faster GEMM layout
    q_sq = (q * q).sum(1, keepdim=True) if metric == "euclidean" else None
    g_sq = (g * g).sum(1)[None] if metric == "euclidean" else None
    one = torch.ones((), dtype=q.dtype, device=q.device)
    sims = torch.empty(rows, len(g), dtype=q.dtype, device=q.device)
    dist = torch.empty(min(block, rows), len(g), dtype=q.dtype, device=q.device) if out is None else None
    for a in range(0, len(q), rows):
        n = min(rows, len(q) - a)
        torch.mm(q[a:a + n], g_t, out=sims[:n])
        for b in range(0, n, block):
            s = sims[b:min(b + block, n)]
            d = dist[:len(s)] if out is None else out[a + b:a + b + len(s)]
            if metric == "cosine":
                torch.sub(one, s, out=d)
            else:  # separate exact steps (x2 is exact): no fused multiply-add, so no layout-dependent rounding
                torch.add(q_sq[a + b:a + b + len(d)], g_sq, out=d).add_(s.mul_(-2.0))
            yield a + b, d


def _accumulate(blocks: Iterator[tuple[int, torch.Tensor]], labels: _Labels, device, max_rank: int,
                single_gallery_shot: bool, num_repeats: int, seed: int) -> ReIDMetrics:
    """Sum AP and CMC hits over blocks of query rows; ``blocks`` yields (first query, distances)."""
    device = torch.device(device)
    t = lambda a: torch.as_tensor(a, device=device)  # noqa: E731
    order, start, count = t(labels.order), t(labels.start), t(labels.count)
    g_cams, group_all, q_cams = t(labels.gallery_camids), t(labels.query_group), t(labels.query_camids)
    junk = t(np.flatnonzero(~labels.gallery_keep)) if not labels.gallery_keep.all() else None
    n_members_all = torch.where(group_all >= 0, count[group_all.clamp(min=0)], 0)
    rng = np.random.default_rng(seed)
    workspace: dict = {}
    ap_sum = torch.zeros((), dtype=torch.float64, device=device)
    cmc_sum = torch.zeros(max_rank, dtype=torch.float64, device=device)
    num_valid = torch.zeros((), dtype=torch.int64, device=device)
    for a, d in blocks:
        rows = slice(a, a + len(d))
        u = t(rng.random((len(d), num_repeats, len(labels.unique_pids)))) if single_gallery_shot else None
        group, n_members = group_all[rows], n_members_all[rows]
        width = int(n_members.max())
        if width == 0:  # no query of this block has its pid in the gallery
            continue
        slot = torch.arange(width, device=device)
        valid = slot < n_members[:, None]
        members = order[(start[group.clamp(min=0)][:, None] + slot).clamp(max=len(order) - 1)].masked_fill(~valid, 0)
        same_cam = g_cams[members] == q_cams[rows, None]
        is_match = valid & ~same_cam
        ap, first, ok = _rank_block(d, members, valid, is_match, valid & same_cam, junk, workspace)
        ap_sum += ap[ok].sum()
        num_valid += ok.sum()
        if single_gallery_shot:
            cmc_sum += _single_shot_hits(d, u, members, is_match, group, order, start, count, max_rank)[ok].sum(0)
        else:
            cmc_sum += torch.bincount(first[ok].clamp(max=max_rank), minlength=max_rank + 1)[:max_rank].cumsum(0)
    valid_count = int(num_valid)
    return _finish(float(ap_sum), cmc_sum.cpu().numpy(), valid_count, len(labels.query_pids) - valid_count)


def _rank_block(d: torch.Tensor, members, valid, is_match, is_removed, junk, workspace: dict):
    """Per-row AP, first-match rank (0-based among kept images) and validity for a block of rows.

    ``members`` (rows, W) are the gallery images with the query's pid, ascending by gallery index.
    """
    before = _count_before(d, members, valid, junk, workspace)
    dm = d.gather(1, members).masked_fill(~valid, float("inf"))
    by_rank = torch.sort(dm, dim=1, stable=True).indices  # (distance, gallery index) order of the members
    match_s, removed_s = is_match.gather(1, by_rank), is_removed.gather(1, by_rank)
    # 0-based position among kept gallery images (read at true matches, which are never removed).
    rank = before.gather(1, by_rank) - removed_s.cumsum(1)
    ordinal = match_s.cumsum(1)
    n_match = match_s.sum(1)
    ap = torch.where(match_s, ordinal.double() / (rank + 1).double(), 0.0).sum(1) / n_match.clamp(min=1)
    first = torch.where(match_s, rank, torch.iinfo(torch.int64).max).amin(1)
    return ap, first, n_match > 0


def _count_before(d: torch.Tensor, members: torch.Tensor, valid: torch.Tensor, junk, workspace: dict) -> torch.Tensor:
    """(rows, W): for each member m, #{g not junk : (d[g], g) < (d[m], m)} in its row, without sorting the row.

    Only images no farther than the row's farthest member can come before a member: with a
    useful model a few percent of the gallery, which are gathered first (all are kept in place
    when more than ``_DENSE_FRACTION`` qualify). They are binned with a monotone map (x <= y gives
    bin(x) <= bin(y)): images in lower bins come first, and only the images sharing a bin with
    some member are ordered exactly, by (bin, distance, gallery index).
    """
    rows, n = d.shape
    device = d.device
    dm = d.gather(1, members)
    lo = d.amin(1)
    hi = dm.masked_fill(~valid, float("-inf")).amax(1)  # -inf for rows without members: nothing selected
    if not (torch.isfinite(lo).all() and (torch.isfinite(hi) | (hi == float("-inf"))).all()):
        raise ValueError("distances contain NaN or inf: check the features or the distance matrix")
    mask = torch.le(d, hi[:, None], out=_scratch(workspace, "mask", (rows, n), torch.bool, device))
    if junk is not None:
        mask[:, junk] = False
    selected = int(torch.count_nonzero(mask))
    nbins = max(1, selected // (8 * rows))
    span = hi.double() - lo.double()
    # 0 <= (x - lo) * scale < nbins for lo <= x <= hi: the factor absorbs float rounding.
    scale = torch.where(span > 0, nbins * (1 - 1e-6) / span, 0.0).clamp(max=1e30).to(d.dtype)[:, None]
    offset = torch.arange(rows, device=device)[:, None] * nbins  # row r owns bins [r * nbins, (r + 1) * nbins)
    trash = rows * nbins  # one more bin for unselected images, never marked
    lo = lo[:, None]
    # Images and members go through the same float operations, so their bins agree bit for bit.
    bins_m = torch.where(valid, ((dm - lo) * scale).long() + offset, offset)
    member_linear = (torch.arange(rows, device=device)[:, None] * n + members).view(-1)
    if selected > _DENSE_FRACTION * rows * n:  # bin the whole block in place (int32: half the traffic)
        scaled = torch.sub(d, lo, out=_scratch(workspace, "scaled", (rows, n), d.dtype, device)).mul_(scale)
        bins = _scratch(workspace, "bins", (rows, n), torch.int32, device).copy_(scaled)  # copy_ truncates
        bins = bins.add_(offset.int()).masked_fill_(~mask, trash).view(-1)
        linear, member_pos = None, member_linear
    else:
        linear = mask.view(-1).nonzero().squeeze(1)  # ascending: row-major, then gallery index
        row = linear // n
        bins = ((d.view(-1)[linear] - lo[row, 0]) * scale[row, 0]).long() + offset[row, 0]
        member_pos = torch.searchsorted(linear, member_linear)
    hist = torch.bincount(bins, minlength=trash + 1)
    below = hist.cumsum(0).sub_(hist)  # selected images in lower bins, counting earlier rows too
    count = below[bins_m] - below[offset]
    # Exact order inside the members' bins.
    marked = torch.zeros(trash + 1, dtype=torch.bool, device=device)
    marked[bins_m[valid]] = True
    inside = torch.index_select(marked, 0, bins).nonzero().squeeze(1)  # positions in `bins`, ascending
    in_bins = bins[inside].long()
    in_dist = d.view(-1)[inside if linear is None else linear[inside]]
    order = torch.sort(in_dist, stable=True).indices
    order = order[torch.sort(in_bins[order], stable=True).indices]
    sorted_bins = in_bins[order].contiguous()
    within = torch.empty_like(order)
    within[order] = torch.arange(len(order), device=device) - torch.searchsorted(sorted_bins, sorted_bins)
    in_inside = torch.searchsorted(inside, member_pos).clamp(max=max(len(inside) - 1, 0))
    return count + torch.where(valid, within[in_inside].view(rows, -1), 0)


def _scratch(workspace: dict, name: str, shape: tuple[int, int], dtype: torch.dtype, device) -> torch.Tensor:
    """A reused scratch tensor: fresh large allocations page-fault again on every block."""
    numel = shape[0] * shape[1]
    buf = workspace.get(name)
    if buf is None or buf.numel() < numel:
        buf = workspace[name] = torch.empty(numel, dtype=dtype, device=device)
    return buf[:numel].view(shape)


def _single_shot_hits(d, u, members, is_match, group, order, start, count, max_rank: int) -> torch.Tensor:
    """(rows, max_rank) CMC of one query block under single gallery shot, averaged over the repeats."""
    rows, repeats, num_pids = u.shape
    # Other pids: the floor(u * n_p)-th gallery image of pid p, in gallery-index order.
    pick = torch.minimum((u * count.double()).floor().long(), count - 1)
    sampled = order[start + pick]  # (rows, R, P)
    # Own pid: the floor(u * n_kept)-th kept member (another camera), members ascending by gallery index.
    own_u = u.gather(2, group.clamp(min=0)[:, None, None].expand(rows, repeats, 1)).squeeze(2)
    n_kept = is_match.sum(1, keepdim=True)
    k = torch.minimum((own_u * n_kept.double()).floor().long(), (n_kept - 1).clamp(min=0))
    nth = torch.searchsorted(is_match.long().cumsum(1), k + 1).clamp(max=members.shape[1] - 1)
    truth = members.gather(1, nth)  # (rows, R)
    d_truth = d.gather(1, truth)[..., None]
    d_sampled = d.gather(1, sampled.view(rows, -1)).view(rows, repeats, num_pids)
    before = (d_sampled < d_truth) | ((d_sampled == d_truth) & (sampled < truth[..., None]))
    before &= torch.arange(num_pids, device=d.device) != group[:, None, None]
    rank = before.sum(2)  # position of the sampled true match in the one-per-pid list
    return (rank[..., None] <= torch.arange(max_rank, device=d.device)).double().mean(1)
