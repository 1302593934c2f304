"""Smoke tests of the benchmark runner and report on trivial callables (no timing assertions)."""

import json

import pytest

from cnnrs.bench.report import format_table, save_json, to_json
from cnnrs.bench.timing import (
    Case,
    CaseResult,
    Contender,
    Measurement,
    Settings,
    measure_case,
    median,
    time_alternating,
)

FAST = Settings(warmup=1, repetitions=4, min_sample_s=0.0, max_case_s=10.0)


class FakeClock:
    """A clock that advances by a fixed step per reading, so sample times are predictable."""

    def __init__(self):
        self.now = 0.0
        self.step = 0.0

    def __call__(self):
        self.now += self.step
        return self.now


def test_contenders_alternate_after_warmup():
    calls = []
    runs = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    samples, calls_per_sample = time_alternating(runs, FAST)
    assert calls_per_sample == {"a": 1, "b": 1}
    assert calls == ["a", "b"] * (FAST.warmup + FAST.repetitions)
    assert [len(s) for s in samples.values()] == [FAST.repetitions] * 2


def test_settle_pause_and_wake_up_call_precede_every_sample_untimed():
    events = []
    clock = FakeClock()
    clock.step = 1.0

    def sleep(seconds):
        events.append(("sleep", seconds))
        clock.now += 100.0  # a pause that, if timed, would dwarf every sample

    runs = {"a": lambda: events.append("a"), "b": lambda: events.append("b")}
    samples, _ = time_alternating(runs, FAST, clock, settle_s=0.25, sleep=sleep)
    warmup = [("sleep", 0.25), "a", ("sleep", 0.25), "b"] * FAST.warmup
    # Each timed sample: the pause, one untimed call to wake the contender, the sample.
    timed = [("sleep", 0.25), "a", "a", ("sleep", 0.25), "b", "b"] * FAST.repetitions
    assert events == warmup + timed
    assert all(s == pytest.approx(1.0) for per_call in samples.values() for s in per_call)


def test_gemm_cases_settle_between_samples():
    from cnnrs.bench import cases_gemm

    assert all(case.settle_s >= 0.1 for case in cases_gemm.cases(quick=True))


def test_median_and_advantage_from_fixed_durations():
    clock = FakeClock()

    def taking(seconds):
        def run():
            clock.step = seconds  # the clock reading after this call is `seconds` later
            return None

        return run

    # cnnrs: each call 0.5 s -> 4 work/s; numpy: 2 s -> 1 work/s
    case = Case(
        "trivial",
        "test",
        "work/s",
        2.0,
        lambda: [Contender("cnnrs", taking(0.5)), Contender("numpy", taking(2.0))],
    )
    result = measure_case(case, FAST, clock=clock)
    assert result.get("cnnrs").value == pytest.approx(4.0)
    assert result.get("numpy").value == pytest.approx(1.0)
    assert result.advantage("numpy") == pytest.approx(4.0)
    assert median([3.0, 1.0, 2.0]) == 2.0


def test_lower_is_better_advantage_is_anchor_over_cnnrs():
    r = CaseResult(
        "mem",
        "footprint",
        "MiB",
        False,
        [Measurement("cnnrs", value=50.0), Measurement("torch", value=200.0)],
    )
    assert r.advantage("torch") == pytest.approx(4.0)


def test_missing_and_failing_anchors_are_reported_not_dropped():
    def broken():
        raise RuntimeError("kernel exploded")

    case = Case(
        "with gaps",
        "test",
        "work/s",
        1.0,
        lambda: [
            Contender("cnnrs", lambda: None),
            Contender.absent("jax", "jax is not installed"),
            Contender("torch", broken),
        ],
    )
    result = measure_case(case, FAST)
    assert result.get("cnnrs").ok
    assert result.get("jax").missing == "jax is not installed" and not result.get("jax").ok
    assert "kernel exploded" in result.get("torch").error
    assert result.advantage("jax") is None
    table = format_table([result])
    assert "missing" in table and "error" in table and "jax is not installed" in table


def test_a_case_that_cannot_be_built_is_an_error_row():
    def build():
        raise AssertionError("cnnrs and torch disagree")

    result = measure_case(Case("bad", "test", "work/s", 1.0, build), FAST)
    assert "disagree" in result.get("cnnrs").error
    assert "bad" in format_table([result])


def test_json_holds_values_samples_and_ratios(tmp_path):
    case = Case(
        "trivial",
        "test",
        "work/s",
        1.0,
        lambda: [Contender("cnnrs", lambda: None), Contender("numpy", lambda: None)],
    )
    result = measure_case(case, FAST)
    path = tmp_path / "bench.json"
    save_json([result], {"mode": "test"}, str(path))
    data = json.loads(path.read_text())
    assert data["meta"] == {"mode": "test"}
    (entry,) = data["cases"]
    assert entry["name"] == "trivial"
    assert len(entry["measurements"][0]["samples"]) == FAST.repetitions
    assert entry["advantage"]["numpy"] == pytest.approx(
        to_json([result], {})["cases"][0]["advantage"]["numpy"]
    )


def test_png_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    from cnnrs.bench.report import save_png

    result = CaseResult(
        "r", "test", "work/s", True, [Measurement("cnnrs", value=2.0), Measurement("torch", value=1.0)]
    )
    path = tmp_path / "ratios.png"
    save_png([result], str(path))
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_suite_lists_cases_without_running_them(capsys):
    from cnnrs.bench.suite import main

    assert main(["--list", "--quick", "--cases", "gemm"]) == 0
    out = capsys.readouterr().out
    assert "gemm n=64" in out and "lenet5" not in out


def test_slow_work_gets_fewer_repetitions_and_is_flagged():
    clock = FakeClock()

    def slow():
        clock.step = 3.0  # 3 s per call against a 5 s budget: one round of two contenders fits once

    settings = Settings(warmup=1, repetitions=7, min_sample_s=0.0, max_case_s=5.0)
    case = Case("slow", "test", "work/s", 1.0, lambda: [Contender("cnnrs", slow), Contender("torch", slow)])
    result = measure_case(case, settings, clock=clock)
    assert [len(m.samples) for m in result.measurements] == [1, 1]
    assert "only 1 timed sample" in format_table([result])


def test_relative_spread_is_iqr_over_median():
    from cnnrs.bench.timing import relative_spread

    assert relative_spread([1.0, 2.0]) is None
    assert relative_spread([1.0, 1.0, 1.0, 1.0]) == 0.0
    assert relative_spread([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx((4.0 - 2.0) / 3.0)
