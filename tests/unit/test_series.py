"""Bounded series (nanwatch/series.py): a run of any length keeps a sample of fixed size with every
anomaly whole, and the dynamics read a sampled run as they read the whole one. No TensorFlow."""

import json
import math
import random

import pytest

from nanwatch import series
from nanwatch.diagnosis import dynamics as D
from nanwatch.report import Report
from tests.support import DYNAMICS

NAN = float("nan")


def steps_series(**limits):
    return series.step_series(**limits)


def record(step, loss=0.5, grad=1.0, **metrics):
    return {"step": step, "epoch": 0, "phase": "train", "loss": loss, "metrics": metrics, "grad_norm": grad}


def noisy(n, seed=0, spikes=(), nan_from=None):
    rng = random.Random(seed)
    for i in range(n):
        grad = (1.0 + rng.random()) * (1e6 if i in spikes else 1.0)
        loss = NAN if nan_from is not None and i >= nan_from else 0.5 + 0.1 * rng.random()
        yield record(i, loss=loss, grad=grad, mae=0.2)


def kept_steps(s):
    return [r["step"] for r in s]


def test_short_series_are_kept_whole():
    s = steps_series()
    for r in noisy(500):
        s.append(r)
    assert kept_steps(s) == list(range(500)) and len(s) == 500
    assert s.sampling() == {"recorded": 500, "kept": 500, "head": 100, "tail": 1000, "stride": 1, "notable": 0,
                            "notable_dropped": 0}


def test_a_long_series_is_bounded_with_head_tail_and_spikes_whole():
    s = steps_series()
    spikes = (5_000, 40_000, 77_777)
    for r in noisy(100_000, spikes=spikes):
        s.append(r)
    kept = kept_steps(s)
    limits = series.STEP_LIMITS
    assert kept == sorted(kept) and len(set(kept)) == len(kept) == len(s) == s.sampling()["kept"]
    assert len(kept) <= limits["head"] + limits["tail"] + 2 * limits["middle"] + limits["notable"]
    assert kept[:100] == list(range(100)) and kept[-1000:] == list(range(99_000, 100_000))
    for spike in spikes:
        assert {spike - 1, spike, spike + 1} <= set(kept)
    sampling = s.sampling()
    assert sampling["recorded"] == 100_000 and sampling["stride"] >= 32 and sampling["notable"] == 9


def test_the_first_nan_neighbourhood_is_pinned_and_a_nan_stretch_does_not_flood():
    """--no-stop: every step after the first NaN is NaN. The first one's window stays whole; the
    stretch after it is sampled like ordinary steps, so the earlier spike is not pushed out."""
    s = steps_series(notable=6)
    for r in noisy(60_000, spikes=(10_000,), nan_from=30_000):
        s.append(r)
    kept = set(kept_steps(s))
    assert set(range(30_000 - 100, 30_000 + 101)) <= kept
    assert {9_999, 10_000, 10_001} <= kept
    assert len(kept) <= 100 + 1000 + 2000 + 6 + 201


def test_the_weakest_notable_records_make_room():
    s = steps_series(notable=3, tail=10, head=5, nan_window=2)
    for i in range(2_000):
        grad = {500: 1e3, 900: 1e6, 1300: 50.0}.get(i, 1.0)
        s.append(record(i, grad=grad))
    kept = set(kept_steps(s))
    assert {899, 900, 901} <= kept                 # the strongest spike and its neighbours
    assert 1300 not in kept and 500 not in kept    # weaker ones made room (3 notable records at most)
    assert s.sampling()["notable_dropped"] == 6


def test_a_non_finite_metric_is_notable_and_strings_are_read():
    s = steps_series(head=2, tail=5, nan_window=2, middle=4)
    for i in range(100):
        s.append(record(i, mae=NAN if i == 50 else 0.1))
    assert {48, 49, 50, 51, 52} <= set(kept_steps(s))
    h = series.history_series(head=1, tail=3, middle=2, nan_window=1, notable=5)
    for i in range(100):
        h.append({"step": i * 10, "weight_norm": 1.0, "grad_norm": "inf" if i == 40 else 1.0, "activation_norm": None})
    assert {390, 400, 410} <= set(r["step"] for r in h)


def test_appending_is_constant_time():
    """No per-record scan: the work per append does not grow with the records held (counted in
    list entries touched by compaction, amortised)."""
    s = steps_series()
    for r in noisy(20_000):
        s.append(r)
    compacted = []
    original = s._compact

    def counting():
        compacted.append(len(s._past))
        original()
    s._compact = counting
    for r in noisy(200_000, seed=1):
        s.append(dict(r, step=r["step"] + 20_000))
    assert sum(compacted) / 200_000 < 0.1   # entries touched per append by compaction, amortised


def test_report_to_dict_says_how_steps_were_sampled():
    report = Report()
    for r in noisy(30_000):
        report.steps.append(r)
    data = report.to_dict()
    assert data["run"]["steps"] == 30_000 and data["run"]["step_sampling"]["recorded"] == 30_000
    assert len(data["steps"]) == data["run"]["step_sampling"]["kept"] < 3_500
    assert len(json.dumps(data)) < 600_000
    legacy = Report()
    legacy.steps = [record(0)]   # a plain list still works (tests and old callers)
    assert "step_sampling" not in legacy.to_dict()["run"] and legacy.to_dict()["steps"][0]["step"] == 0


# --- the dynamics read a sampled run as the whole one -------------------------------------------
def load(name):
    return json.loads((DYNAMICS / f"{name}.json").read_text())


def stretched(rec, quiet=20_000):
    """The recording after `quiet` steps that hover around its first step (within 1%): a long run
    whose story is the recording's. Histories get one point per step, as recorded."""
    def lengthen(points, make):
        first = points[0]
        out = [make(first, i, 1.0 + 0.01 * math.sin(i)) for i in range(quiet)]
        return out + [dict(p, step=quiet + i) for i, p in enumerate(points)]

    def step_at(s, i, jitter):
        return dict(s, step=i, loss=D.num(s["loss"]) * jitter, grad_norm=D.num(s["grad_norm"]) * jitter)

    def point_at(h, i, jitter):
        grad = D.num(h.get("grad_norm"))
        return dict(h, step=i, weight_norm=D.num(h["weight_norm"]), grad_norm=None if grad is None else grad * jitter)

    steps = lengthen(rec["steps"], step_at)
    layers = [dict(layer, history=lengthen(layer["history"], point_at)) for layer in rec["layers"]]
    return steps, layers


def sampled(steps, layers):
    s = series.step_series()
    for r in steps:
        s.append(r)
    out = []
    for layer in layers:
        h = series.history_series()
        for p in layer["history"]:
            h.append(p)
        out.append(dict(layer, history=h.records()))
    return s.records(), out


READ = ("explosion", "nonfinite_step", "explosion_step", "rising_run", "grad_peak_step", "spikes", "loss_sustained",
        "top_layer")


@pytest.mark.parametrize("name", sorted(p.stem for p in DYNAMICS.glob("*.json")))
def test_dynamics_read_a_sampled_long_run_as_the_whole_one(name):
    rec = load(name)
    steps, layers = stretched(rec)
    few_steps, few_layers = sampled(steps, layers)
    assert len(few_steps) < len(steps) / 5
    whole = D.analyze(steps, layers, rec["optimizer"])
    part = D.analyze(few_steps, few_layers, rec["optimizer"])
    assert {k: part[k] for k in READ} == {k: whole[k] for k in READ}
    for key in ("grad_growth", "loss_growth", "top_layer_growth"):
        assert part[key] == pytest.approx(whole[key], rel=1e-9), key
    # weight jumps are read between neighbouring points only: a jump the rules act on (5x) is kept whole
    assert part["weight_jump"] <= whole["weight_jump"] + 1e-12
    if whole["weight_jump"] >= D.WEIGHT_JUMP:
        assert (part["weight_jump"], part["weight_jump_step"]) == (whole["weight_jump"], whole["weight_jump_step"])
    causes = [c["cause"] for c in D.explosion_candidates(part, rec["optimizer"])]
    assert causes == [c["cause"] for c in D.explosion_candidates(whole, rec["optimizer"])]
    assert D.early_warnings(few_steps, few_layers, rec["optimizer"]) == D.early_warnings(steps, layers, rec["optimizer"])


def test_a_weight_jump_in_the_thinned_middle_is_kept_with_its_neighbour():
    """A learning-rate signature (the weight norm x6 in one update) at point 8,000 of 30,000: the
    sample keeps both points, and two far-apart points of the thinned middle are not read as one
    update."""
    h = series.history_series()
    for i in range(30_000):
        h.append({"step": 10 * i, "weight_norm": (6.0 if i >= 8_000 else 1.0) * (1 + 0.001 * math.sin(i)),
                  "grad_norm": 1.0, "activation_norm": None})
    points = h.records()
    assert {79_990, 80_000} <= {p["step"] for p in points} and len(points) < 500
    a = D.analyze([record(0)], [{"layer": "dense", "history": points}], {"class": "Adam", "learning_rate": 0.001})
    assert a["weight_jump_step"] == 79_990 and a["weight_jump"] == pytest.approx(6.0, rel=0.01)


def test_a_saved_output_keeps_the_first_nan_and_the_end():
    """The notebook keeps a thinner copy (report.compact, MAX_SAVED_POINTS): there too the first
    non-finite steps, with their neighbours, and the last steps survive."""
    from nanwatch.report import compact
    from nanwatch.schema import MAX_SAVED_POINTS

    report = Report()
    for r in noisy(5_000, nan_from=2_000):
        report.steps.append(r)
    saved = compact(report.to_dict())["steps"]
    kept = [s["step"] for s in saved]
    assert len(kept) <= MAX_SAVED_POINTS and kept == sorted(kept)
    assert {1_999, 2_000, 2_001} <= set(kept) and kept[-MAX_SAVED_POINTS // 3:] == list(range(4_900, 5_000))
