"""Exact checks of physical.metrics on hand-made prediction tables."""
from __future__ import annotations

import numpy as np
import pytest

from physical.metrics import (Preds, correct, destruction, prefilter, stage_metrics, thresholded,
                              wilson)

OTHER = [901, 902, 903, 904]  # class ids never used as labels


def pred(first, rest=OTHER, conf=0.9):
    """One image's top-5: `first`, then `rest`; top-1 probability `conf`."""
    ids = [first] + [c for c in rest if c != first][:4]
    rem = (1 - conf) / 4
    return ids, [conf, rem, rem, rem, rem]


def table(*rows):
    return Preds([r[0] for r in rows], [r[1] for r in rows])


def top1(label, conf=0.9):
    return pred(label, conf=conf)


def top5_only(label, conf=0.9):      # wrong top-1, label at rank 3
    return pred(900, [901, 902, label, 903], conf)


def miss(conf=0.9):                  # label nowhere in the top-5
    return pred(900, conf=conf)


# ---- Wilson interval: references computed by hand from the score formula (= statsmodels'
# proportion_confint(k, n, method="wilson")).
@pytest.mark.parametrize("k,n,lo,hi", [
    (0, 10, 0.0, 0.2775328),
    (5, 10, 0.2365931, 0.7634069),
    (10, 10, 0.7224672, 1.0),
    (1, 1, 0.2065493, 1.0),
    (50, 100, 0.4038315, 0.5961685),
])
def test_wilson_known_values(k, n, lo, hi):
    got = wilson(k, n)
    assert got == pytest.approx((lo, hi), abs=1e-6)


def test_wilson_none_when_empty_and_rejects_bad_counts():
    assert wilson(0, 0) is None
    with pytest.raises(ValueError):
        wilson(3, 2)


def test_correct_top1_and_top5():
    labels = [5, 6, 7]
    p = table(top1(5), top5_only(6), miss())
    assert correct(p, labels, 1).tolist() == [True, False, False]
    assert correct(p, labels, 5).tolist() == [True, True, False]


# ---- destruction rate
def test_destruction_formula_counts_only_clean_right_adv_wrong():
    clean = [1, 1, 1, 1, 0, 0]
    adv = [0, 0, 0, 1, 0, 1]
    trans = [1, 0, 1, 0, 1, 1]  # images 0, 2 destroyed; 4 (clean wrong) and 3 (adv right) don't count
    d = destruction(clean, adv, trans)
    assert (d.k, d.n) == (2, 3)
    assert d.value == pytest.approx(2 / 3)
    assert d.ci == pytest.approx(wilson(2, 3))


def test_destruction_is_none_not_zero_when_denominator_empty():
    d = destruction([0, 1], [0, 1], [1, 1])  # no image right clean and wrong adversarial
    assert d.n == 0 and d.value is None and d.ci is None
    row = stage_metrics([5, 6], table(miss(), top1(6)), table(miss(), top1(6)), table(top1(5), top1(6)))
    assert row["destruction_top1"] is None and row["destruction_top1_ci"] is None
    assert row["destruction_n"] == 0


def test_stage_metrics_top1_and_top5_destruction_and_accuracies():
    labels = [1, 2, 3, 4]
    clean = table(top1(1), top1(2), top1(3), top5_only(4))
    adv = table(miss(), top5_only(2), miss(), miss())
    photo = table(top1(1), miss(), top5_only(3), top1(4))
    row = stage_metrics(labels, clean, adv, photo)
    # top-1 denominator: images 0, 1, 2 (clean right, adv wrong); after photo right: image 0 only
    assert row["destruction_n"] == 3 and row["destruction_top1"] == pytest.approx(1 / 3, abs=1e-6)
    # top-5: clean right for all 4; adv wrong (top-5) for 0, 2, 3; photo right top-5: 0, 2, 3
    assert row["destruction_n_top5"] == 3 and row["destruction_top5"] == 1.0
    assert row["digital_clean_top1"] == 0.75 and row["digital_clean_top5"] == 1.0
    assert row["adv_top1"] == 0.5 and row["adv_top5"] == 0.75
    assert row["digital_adv_top1"] == 0.0 and row["digital_adv_top5"] == 0.25
    assert row["clean_top1"] == row["digital_clean_top1"]  # no stage clean given: the PNG one
    assert row["adv_top1_ci"] == pytest.approx(list(wilson(2, 4)), abs=1e-6)


def test_photo_clean_uses_only_present_crops_but_destruction_uses_digital_clean():
    labels = [1, 2]
    digital_clean = table(top1(1), top1(2))
    digital_adv = table(miss(), miss())
    photo_adv = table(top1(1), miss())
    photo_clean = table(miss(), top1(2))   # image 0's clean photo is wrong: irrelevant to d
    row = stage_metrics(labels, digital_clean, digital_adv, photo_adv, stage_clean=photo_clean,
                        clean_present=[True, True])
    assert row["clean_top1"] == 0.5 and row["digital_clean_top1"] == 1.0
    assert row["destruction_top1"] == 0.5 and row["destruction_n"] == 2
    row = stage_metrics(labels, digital_clean, digital_adv, photo_adv, stage_clean=photo_clean,
                        clean_present=[False, True])
    assert row["clean_n"] == 1 and row["clean_top1"] == 1.0 and row["n"] == 2


# ---- prefiltered subset
def test_prefilter_selection_including_the_08_edge():
    labels = [1, 2, 3, 4, 5, 6]
    clean = table(top1(1), top1(2), top1(3), top1(4), top5_only(5), top1(6))
    adv = table(
        miss(conf=0.8),        # exactly 0.8: in
        miss(conf=0.7999),     # just below: out
        top5_only(3, conf=0.95),  # wrong top-1 but right top-5: out
        miss(conf=0.99),       # in
        miss(conf=0.99),       # clean wrong top-1: out
        top1(6, conf=0.99),    # adversarial right: out
    )
    assert prefilter(labels, clean, adv).tolist() == [True, False, False, True, False, False]
    assert prefilter(labels, clean, adv, min_confidence=0.9).tolist() == [False, False, False, True, False, False]


# ---- thresholded classifier
def test_thresholded_acceptance_error_and_reduction():
    labels = [1, 2, 3, 4, 5]
    p = table(top1(1, conf=0.95), miss(conf=0.9), miss(conf=0.8), miss(conf=0.5), top1(5, conf=0.3))
    t = thresholded(labels, p, 0.8)
    # accepted: confidence > 0.8 strictly → images 0, 1 (0.8 itself is not accepted)
    assert (t.accepted.k, t.accepted.n) == (2, 5)
    assert (t.accepted_error.k, t.accepted_error.n) == (1, 2)
    assert t.error.value == pytest.approx(3 / 5)
    assert t.error_reduction == pytest.approx(1 - 0.5 / 0.6)


def test_thresholded_nothing_accepted_is_none():
    t = thresholded([1, 2], table(miss(conf=0.5), miss(conf=0.6)), 0.8)
    assert t.accepted.value == 0.0
    assert t.accepted_error.value is None and t.error_reduction is None


def test_thresholded_zero_base_error_gives_no_reduction():
    t = thresholded([1], table(top1(1, conf=0.99)), 0.8)
    assert t.error.value == 0.0 and t.error_reduction is None


@pytest.mark.parametrize("bad", [0, 1, -0.1, 1.5])
def test_threshold_outside_open_interval_is_refused(bad):
    with pytest.raises(ValueError):
        thresholded([1], table(top1(1)), bad)


def test_stage_metrics_threshold_fields():
    labels = [1, 2]
    clean = table(top1(1, conf=0.9), top1(2, conf=0.5))
    adv = table(miss(conf=0.95), miss(conf=0.85))
    row = stage_metrics(labels, clean, adv, adv, threshold=0.9)
    assert row["threshold"] == 0.9
    assert row["clean_accept_rate"] == 0.0           # 0.9 is not > 0.9
    assert row["adv_accept_rate"] == 0.5 and row["adv_accepted_error"] == 1.0
    assert row["adv_error_reduction"] == 0.0
    assert row["clean_accepted_error"] is None and row["clean_accepted_error_ci"] is None
    assert row["adv_accept_rate_ci"] == pytest.approx(list(wilson(1, 2)), abs=1e-6)


def test_every_rate_has_a_ci_field():
    labels = [1]
    row = stage_metrics(labels, table(top1(1)), table(miss()), table(miss()))
    rates = [f"{p}_top{k}" for p in ("clean", "adv", "digital_clean", "digital_adv", "destruction") for k in (1, 5)]
    rates += [f"{v}_{m}" for v in ("clean", "adv") for m in ("accept_rate", "accepted_error")]
    assert all(f"{k}_ci" in row for k in rates)
    assert sorted(k[:-3] for k in row if k.endswith("_ci")) == sorted(rates)
    assert np.isclose(row["destruction_top1"], 0.0) and row["destruction_n"] == 1
