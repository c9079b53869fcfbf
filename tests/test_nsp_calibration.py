"""Tests of NSP calibration: the fit, the baking into the head's weights, ECE and the held-out split."""

from __future__ import annotations

import pytest
import torch

from model_utils import nsp_calibration as K
from model_utils.data import Document


def test_baked_head_equals_temperature_and_bias_applied_to_the_margin():
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 2)
    hidden = torch.randn(50, 16)
    with torch.no_grad():
        logits = head(hidden)
        margin = logits[:, 0] - logits[:, 1]
        K.bake_calibration(head, temperature=2.5, bias=-1.3)
        baked = head(hidden)
    assert torch.allclose(baked[:, 0] - baked[:, 1], margin / 2.5 - 1.3, atol=1e-5)
    # the probabilities a consumer computes with softmax are the calibrated ones
    assert torch.allclose(baked.softmax(-1)[:, 0], torch.sigmoid(margin / 2.5 - 1.3), atol=1e-6)


def test_fit_recovers_a_known_temperature_and_bias():
    gen = torch.Generator().manual_seed(1)
    margins = torch.randn(20000, generator=gen) * 6
    labels = (torch.rand(20000, generator=gen) < torch.sigmoid(margins / 3.0 + 0.7)).float()
    temperature, bias = K.fit_temperature_bias(margins, labels)
    assert temperature == pytest.approx(3.0, rel=0.08)
    assert bias == pytest.approx(0.7, abs=0.08)


def test_ece_and_reliability_bins_by_hand():
    probs = torch.tensor([0.05, 0.15, 0.95, 0.92, 0.55, 0.58])
    labels = torch.tensor([0.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    bins = K.reliability_bins(probs, labels)
    assert [(b["low"], b["count"]) for b in bins] == [(0.0, 1), (0.1, 1), (0.5, 2), (0.9, 2)]
    expected = (0.05 + 0.15 + 2 * abs(1 - 0.565) + 2 * abs(0.5 - 0.935)) / 6
    assert K.expected_calibration_error(probs, labels) == pytest.approx(expected, abs=1e-6)
    assert K.expected_calibration_error(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0])) == 0.0


def test_calibration_split_is_stable_disjoint_and_about_half():
    docs = [Document("s", f"s:{i}", ("a",)) for i in range(1000)]
    calibration, test = K.calibration_split(docs)
    assert {d.id for d in calibration}.isdisjoint({d.id for d in test})
    assert 400 < len(calibration) < 600 and len(calibration) + len(test) == 1000
    assert K.calibration_split(list(reversed(docs)))[0] == list(reversed(calibration))


def test_equal_group_weights_fit_between_the_groups_whatever_their_sizes():
    """Two groups calibrated differently: the equally weighted fit lands between their own fits, and a group's
    size (10x more rows) does not let it take over, as it does in the unweighted fit."""
    gen = torch.Generator().manual_seed(2)

    def group(n, temperature):
        margins = torch.randn(n, generator=gen) * 4
        return margins, (torch.rand(n, generator=gen) < torch.sigmoid(margins / temperature)).float()

    big, small = group(20000, 3.0), group(2000, 0.5)
    margins, labels = torch.cat([big[0], small[0]]), torch.cat([big[1], small[1]])
    weights = K.group_weights(20000, 2000)
    assert weights.shape == (22000,) and weights[:20000].sum() == pytest.approx(weights[20000:].sum())
    weighted, _ = K.fit_temperature_bias(margins, labels, weights=weights)
    pooled, _ = K.fit_temperature_bias(margins, labels)
    alone = [K.fit_temperature_bias(*g)[0] for g in (big, small)]
    assert alone[1] < weighted < pooled < alone[0]
    assert pooled > 2.5 > 2.0 > weighted  # unweighted, the big group takes over
    # weighting equally is fitting two groups of equal size: here the first 2,000 rows of the big one
    same_size, _ = K.fit_temperature_bias(torch.cat([big[0][:2000], small[0]]), torch.cat([big[1][:2000], small[1]]))
    assert weighted == pytest.approx(same_size, rel=0.05)


def test_everyday_calibration_pairs_are_balanced_and_apart_from_the_test_set():
    import json

    texts, labels = K.everyday_calibration_pairs()
    assert len(texts) >= 80 and labels.sum() == len(labels) / 2
    test = [json.loads(line) for line in open(K.EVERYDAY_CALIBRATION.parents[3] / "tests/data/nsp_everyday.jsonl")]
    test_sentences = {s for row in test for s in (row["first"], row["second"])}
    assert not test_sentences & {s for pair in texts for s in pair}, "the test pairs are never used for calibration"
    assert len(set(texts)) == len(texts)
