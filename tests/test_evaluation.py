"""Re-ID evaluation: hand-checked CMC/mAP cases, the fast path against the per-query reference, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from posedive_lib.reid import evaluation as ev
from posedive_lib.reid.evaluation import (ReIDMetrics, evaluate, evaluate_distmat, evaluate_reference, flip_average,
                                          pairwise_distance)


def _positions(query_x, gallery_x):
    """1-D positions as features: squared Euclidean distance (q - g)^2, exact for small integers."""
    return np.asarray(query_x, np.float32)[:, None], np.asarray(gallery_x, np.float32)[:, None]


def _all_ways(qx, gx, q_pids, g_pids, q_cams, g_cams, **kw) -> list[ReIDMetrics]:
    """The fast path from features and from the distance matrix, and the reference: all three."""
    qf, gf = _positions(qx, gx)
    dist = pairwise_distance(qf, gf, "euclidean").numpy()
    return [evaluate(qf, gf, q_pids, g_pids, q_cams, g_cams, metric="euclidean", **kw),
            evaluate_distmat(dist, q_pids, g_pids, q_cams, g_cams, **kw),
            evaluate_reference(dist, q_pids, g_pids, q_cams, g_cams, **kw)]


def _assert_metrics(results, mAP, cmc, skipped=0):
    for m in results:
        assert m.mAP == pytest.approx(mAP, abs=1e-12)
        np.testing.assert_allclose(m.cmc, cmc, atol=1e-12)
        assert m.num_skipped == skipped


# ------------------------------------------------------------------------------------------------
# Hand-checked cases (query at 0; gallery at positions x, so distance x^2)


def test_known_average_precision_matches_at_ranks_1_and_3():
    # Ranking: pid 1, pid 2, pid 1, pid 3 -> precisions 1/1 and 2/3 at the two true matches.
    results = _all_ways([0], [1, 2, 3, 4], [1], [1, 2, 1, 3], [0], [1, 1, 1, 1], max_rank=4)
    _assert_metrics(results, (1 / 1 + 2 / 3) / 2, [1, 1, 1, 1])


def test_same_pid_same_camera_is_removed_and_a_query_left_without_matches_is_skipped():
    # Query 0 (cam 0): its nearest pid-1 image is in cam 0 and is removed -> same as the case above.
    # Query 1 (pid 2, cam 1): its only gallery image is in cam 1 -> skipped and counted.
    results = _all_ways([0, 0], [0.5, 1, 2, 3, 4], [1, 2], [1, 1, 2, 1, 3], [0, 1], [0, 1, 1, 1, 1], max_rank=3)
    _assert_metrics(results, (1 + 2 / 3) / 2, [1, 1, 1], skipped=1)
    assert all(m.num_valid_queries == 1 for m in results)


def test_ties_are_broken_by_gallery_index():
    # Both gallery images at distance 1 (positions -1 and 1): the lower index ranks first.
    _assert_metrics(_all_ways([0], [-1, 1], [1], [2, 1], [0], [1, 1], max_rank=2), 0.5, [0, 1])
    _assert_metrics(_all_ways([0], [-1, 1], [1], [1, 2], [0], [1, 1], max_rank=2), 1.0, [1, 1])
    # Three-way tie with the match in the middle, then a second match behind it.
    _assert_metrics(_all_ways([0], [1, -1, 1, 2], [1], [3, 1, 2, 1], [0], [1, 1, 1, 1], max_rank=3),
                    (1 / 2 + 2 / 4) / 2, [0, 1, 1])


def test_distractors_stay_as_non_matches_and_junk_is_removed():
    # pid 0 (distractor) ranks first and counts as a wrong answer.
    _assert_metrics(_all_ways([0], [1, 2], [1], [0, 1], [0], [1, 1], max_rank=2), 0.5, [0, 1])
    # pid -1 (junk) ranks first and is dropped from the ranking.
    _assert_metrics(_all_ways([0], [1, 2], [1], [-1, 1], [0], [1, 1], max_rank=2), 1.0, [1, 1])
    # With junk_pids=() it is an ordinary non-match again.
    _assert_metrics(_all_ways([0], [1, 2], [1], [-1, 1], [0], [1, 1], max_rank=2, junk_pids=()), 0.5, [0, 1])


def test_perfect_and_worst_rankings():
    _assert_metrics(_all_ways([0], [1, 2, 3, 4, 5], [7], [7, 7, 1, 2, 3], [0], [1] * 5, max_rank=5), 1.0, [1] * 5)
    # The two true matches last of five: AP = (1/4 + 2/5) / 2.
    _assert_metrics(_all_ways([0], [1, 2, 3, 4, 5], [7], [1, 2, 3, 7, 7], [0], [1] * 5, max_rank=5),
                    (1 / 4 + 2 / 5) / 2, [0, 0, 0, 1, 1])


def test_metrics_average_over_valid_queries_and_cmc_extends_past_the_gallery():
    # Query A (pid 1): match at rank 2 of 3 -> AP 1/2; query B (pid 2): match at rank 1 -> AP 1.
    results = _all_ways([0, 10], [1, 2, 9], [1, 2], [3, 1, 2], [0, 0], [1, 1, 1], max_rank=5)
    _assert_metrics(results, 0.75, [0.5, 1, 1, 1, 1])
    m = results[0]
    assert m.rank(1) == 0.5 and m.rank(5) == 1.0 and m.num_valid_queries == 2
    assert m.as_dict() == pytest.approx({"mAP": 75.0, "R1": 50.0, "R5": 100.0})
    with pytest.raises(ValueError, match="rank must lie in"):
        m.rank(6)


def test_single_gallery_shot_samples_one_image_per_identity():
    # pid 1 has two gallery images (distances 1 and 9), pid 2 one (distance 4). A draw of the far
    # pid-1 image puts pid 2 first, so R1 is the share of draws picking the near one (~1/2);
    # AP still uses the whole ranking: (1/1 + 2/3) / 2.
    results = _all_ways([0], [1, 2, 3], [1], [1, 2, 1], [0], [1, 1, 1], max_rank=2, single_gallery_shot=True,
                        num_repeats=4000, seed=3)
    for m in results:
        assert m.mAP == pytest.approx((1 + 2 / 3) / 2)
        assert m.cmc[1] == 1.0 and 0.45 < m.cmc[0] < 0.55
        assert m.cmc[0] == results[-1].cmc[0]  # fast and reference draw the same images
    # With one gallery image per identity there is nothing to draw: plain CMC.
    _assert_metrics(_all_ways([0], [1, 2, 3], [1], [2, 1, 3], [0], [1, 1, 1], max_rank=2, single_gallery_shot=True),
                    0.5, [0, 1])


# ------------------------------------------------------------------------------------------------
# Fast path == reference on random and adversarial data


def _random_case(seed: int, metric: str = "euclidean"):
    """Small-integer features (exact distances, many ties); junk, distractors, absent pids, few cameras."""
    rng = np.random.default_rng(seed)
    nq, ng, dim = int(rng.integers(1, 60)), int(rng.integers(5, 400)), int(rng.integers(1, 6))
    if metric == "cosine":  # rows of norm 2 (four entries +-1): normalised entries +-1/2, exact dot products
        dim = max(dim, 4)
        def feats(n):
            x = np.zeros((n, dim), np.float32)
            for row in x:
                row[rng.choice(dim, 4, replace=False)] = rng.choice([-1.0, 1.0], 4)
            return x
        qf, gf = feats(nq), feats(ng)
    else:
        qf, gf = (rng.integers(-2, 3, (n, dim)).astype(np.float32) for n in (nq, ng))
    num_ids = int(rng.integers(1, 12))
    q_pids, g_pids = rng.integers(-1, num_ids, nq), rng.integers(-1, num_ids, ng)
    q_cams, g_cams = rng.integers(0, 3, nq), rng.integers(0, 3, ng)
    q_pids[0], g_pids[0], g_cams[0], q_cams[0] = 1, 1, 1, 0  # at least one valid query
    return qf, gf, q_pids, g_pids, q_cams, g_cams


def _check_same(fast: ReIDMetrics, ref: ReIDMetrics, tol: float = 1e-6):
    assert abs(fast.mAP - ref.mAP) <= tol
    np.testing.assert_allclose(fast.cmc, ref.cmc, atol=tol, rtol=0)
    assert (fast.num_valid_queries, fast.num_skipped) == (ref.num_valid_queries, ref.num_skipped)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("seed", range(12))
def test_fast_equals_reference_on_random_tied_data(seed, metric, monkeypatch):
    monkeypatch.setattr(ev, "_BLOCK_ELEMENTS", 1 << int(np.random.default_rng(seed).integers(6, 12)))  # many blocks
    monkeypatch.setattr(ev, "_DENSE_FRACTION", (0.0, 1.0)[seed % 2])  # both ways of binning a block
    data = _random_case(seed, metric)
    chunk = int(np.random.default_rng(seed + 100).integers(1, 20))
    dist = pairwise_distance(*data[:2], metric, chunk_size=chunk).numpy()
    ref = evaluate_reference(dist, *data[2:], max_rank=7)
    _check_same(evaluate(*data, metric=metric, max_rank=7, chunk_size=chunk), ref)
    _check_same(evaluate_distmat(dist, *data[2:], max_rank=7), ref)


def test_fast_equals_reference_on_continuous_features_with_structure(monkeypatch):
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(40, 32))
    g_pids, q_pids = rng.integers(0, 40, 3000), rng.integers(0, 40, 200)
    gf = centres[g_pids] + 2.0 * rng.normal(size=(3000, 32))
    qf = centres[q_pids] + 2.0 * rng.normal(size=(200, 32))
    q_cams, g_cams = rng.integers(0, 6, 200), rng.integers(0, 6, 3000)
    for metric, chunk in (("cosine", None), ("euclidean", None), ("cosine", 7)):
        dist = pairwise_distance(qf, gf, metric, chunk_size=chunk).numpy()
        ref = evaluate_reference(dist, q_pids, g_pids, q_cams, g_cams)
        assert 0.05 < ref.mAP < 0.95  # neither trivial nor hopeless
        for dense in (0.0, 1.0):
            monkeypatch.setattr(ev, "_DENSE_FRACTION", dense)
            _check_same(evaluate(qf, gf, q_pids, g_pids, q_cams, g_cams, metric=metric, chunk_size=chunk), ref,
                        tol=1e-12)


def test_adversarial_all_equal_features_one_camera_and_absent_identities():
    rng = np.random.default_rng(1)
    qf, gf = np.ones((20, 8), np.float32), np.ones((50, 8), np.float32)  # every distance ties
    q_pids, g_pids = rng.integers(0, 5, 20), rng.integers(0, 5, 50)
    q_pids[:3] = 99  # not in the gallery: skipped
    q_cams, g_cams = np.zeros(20, int), rng.integers(0, 2, 50)
    for metric in ("cosine", "euclidean"):
        ref = evaluate_reference(pairwise_distance(qf, gf, metric).numpy(), q_pids, g_pids, q_cams, g_cams)
        _check_same(evaluate(qf, gf, q_pids, g_pids, q_cams, g_cams, metric=metric, chunk_size=3), ref, tol=1e-12)
        assert ref.num_skipped >= 3
    # One camera for everything: every true match is removed, nothing is left to score.
    with pytest.raises(ValueError, match="no query has a true match"):
        evaluate(qf, gf, q_pids, g_pids, q_cams, np.zeros(50, int))


def test_chunking_does_not_change_the_result():
    data = _random_case(5, "cosine")
    results = [evaluate(*data, chunk_size=c) for c in (1, 7, None)]
    results.append(evaluate(*data, memory_budget_mib=1e-3))  # the budget picks one query per chunk
    for m in results[1:]:
        np.testing.assert_array_equal(m.cmc, results[0].cmc)
        assert m.mAP == pytest.approx(results[0].mAP, abs=1e-12)


def test_cosine_and_euclidean_agree_on_normalised_features():
    qf, gf, *labels = _random_case(3, "cosine")
    unit_q, unit_g = qf / 2, gf / 2  # rows of norm 2 -> unit rows, exactly
    cos = evaluate(qf, gf, *labels, metric="cosine")
    euc = evaluate(unit_q, unit_g, *labels, metric="euclidean")
    assert cos.mAP == euc.mAP and np.array_equal(cos.cmc, euc.cmc)
    np.testing.assert_array_equal(2 * pairwise_distance(qf, gf, "cosine"), pairwise_distance(unit_q, unit_g,
                                                                                              "euclidean"))


def test_single_gallery_shot_is_seeded_and_equals_the_reference(monkeypatch):
    monkeypatch.setattr(ev, "_BLOCK_ELEMENTS", 1 << 9)
    data = _random_case(4)
    dist = pairwise_distance(*data[:2], "euclidean").numpy()
    kw = dict(max_rank=5, single_gallery_shot=True, seed=11)
    ref = evaluate_reference(dist, *data[2:], **kw)
    for chunk in (1, 6, None):
        _check_same(evaluate(*data, metric="euclidean", chunk_size=chunk, **kw), ref, tol=1e-12)
    _check_same(evaluate_distmat(dist, *data[2:], **kw), ref, tol=1e-12)
    again = evaluate(*data, metric="euclidean", **kw)
    other = [evaluate(*data, metric="euclidean", max_rank=5, single_gallery_shot=True, seed=s) for s in range(5)]
    assert np.array_equal(again.cmc, evaluate(*data, metric="euclidean", **kw).cmc)
    assert any(not np.array_equal(o.cmc, again.cmc) for o in other)  # the draw matters here
    assert all(o.mAP == pytest.approx(again.mAP) for o in other)  # AP uses the whole ranking


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    data = _random_case(2)
    cpu = evaluate(*data, metric="euclidean")
    _check_same(evaluate(*data, metric="euclidean", device="cuda"), cpu, tol=1e-9)


# ------------------------------------------------------------------------------------------------
# Inputs


def test_flip_average_is_the_normalised_mean():
    a, b = torch.tensor([[3.0, 0.0]]), torch.tensor([[1.0, 2.0]])
    torch.testing.assert_close(flip_average(a, b), torch.tensor([[2.0, 1.0]]) / np.sqrt(5.0))
    with pytest.raises(ValueError, match="differ in shape"):
        flip_average(a, torch.zeros(2, 2))


@pytest.mark.parametrize("change, message", [
    (dict(query_pids=[1, 2]), "query_pids has 2 entries for 3 images"),
    (dict(gallery_camids=[0]), "gallery_camids has 1 entries for 4 images"),
    (dict(query_features=np.zeros((0, 2))), "query features are empty"),
    (dict(gallery_features=np.zeros((0, 2))), "gallery features are empty"),
    (dict(gallery_features=np.zeros((4, 3))), "2 dims but gallery features have 3"),
    (dict(query_features=np.array([[0.0, np.nan]] * 3)), "query features contain NaN"),
    (dict(metric="manhattan"), "unknown metric 'manhattan'"),
    (dict(max_rank=0), "max_rank must be an integer >= 1"),
    (dict(query_pids=[1.5, 2.0, 3.0]), "query_pids must be integers"),
    (dict(chunk_size=0), "chunk_size must be a positive integer"),
])
def test_bad_inputs_raise_one_line_errors(change, message):
    args = dict(query_features=np.ones((3, 2)), gallery_features=np.ones((4, 2)), query_pids=[1, 2, 3],
                gallery_pids=[1, 2, 3, 4], query_camids=[0, 0, 0], gallery_camids=[1, 1, 1, 1])
    args.update(change)
    with pytest.raises(ValueError, match=message) as info:
        evaluate(**args)
    assert "\n" not in str(info.value)


def test_bad_distance_matrices_raise():
    labels = ([1], [1, 2], [0], [1, 1])
    with pytest.raises(ValueError, match="distmat must be 2-D"):
        evaluate_reference(np.zeros(2), *labels)
    with pytest.raises(ValueError, match="distmat contains NaN"):
        evaluate_reference(np.array([[np.nan, 1.0]]), *labels)
    with pytest.raises(ValueError, match="distances contain NaN"):
        evaluate_distmat(np.array([[np.nan, 1.0]]), *labels)
    with pytest.raises(ValueError, match="gallery_pids has 2 entries for 3 images"):
        evaluate_distmat(np.zeros((1, 3)), *labels)
