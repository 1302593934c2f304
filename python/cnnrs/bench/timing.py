"""The side-by-side runner: cases, contenders, alternating timing, medians, ratios.

A *case* is one piece of work (a GEMM size, a layer, a training step) done by
several *contenders*: cnnrs (always first, the subject) and its anchors
(numpy, torch, jax). The runner times them alternately (A B A B ...) after a
warm-up, so that the drift of a shared machine hits every contender alike, and
reports the median of each. Absolute times drift from run to run on a shared
machine; the ratio of two medians taken side by side is what to read.

Every value is oriented so that the *advantage* ratio is > 1 when cnnrs is
better: throughput cnnrs / anchor, or for lower-is-better metrics (memory,
seconds) anchor / cnnrs.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

SUBJECT = "cnnrs"


@dataclass
class Contender:
    """One library doing a case's work: ``run()`` performs one unit of it.

    A contender that cannot run (library not installed, feature missing) has
    ``run=None`` and says why in ``missing``; it stays in the table.
    """

    name: str
    run: Optional[Callable[[], object]] = None
    missing: Optional[str] = None

    @classmethod
    def absent(cls, name: str, why: str) -> Contender:
        return cls(name=name, run=None, missing=why)


@dataclass
class Case:
    """A named piece of work; ``build()`` allocates its data and returns the contenders.

    ``work`` is the amount of work one ``run()`` does, in the numerator of
    ``unit`` (GFLOP for GFLOP/s, images for images/s), so that
    throughput = work / seconds. ``build`` is called only for selected cases,
    so that selecting a few cases does not allocate all of them.
    """

    name: str
    group: str
    unit: str
    work: float
    build: Callable[[], list[Contender]]
    note: str = ""
    #: Seconds to sleep before each sample, so that no contender's background
    #: threads are still busy from the previous sample (see ``time_alternating``).
    settle_s: float = 0.0


#: Untimed work before each sample that follows a settle pause (see ``time_alternating``).
WARM_AFTER_SETTLE_S = 0.01


@dataclass
class Settings:
    """How hard to measure. ``min_sample_s``: each timed sample repeats the call until it
    lasts at least this long (short calls are otherwise dominated by the clock);
    ``max_case_s``: a budget per case that lowers the repetitions of very slow work.
    The first call of each contender (untimed check that it runs) counts as a warm-up round."""

    warmup: int = 1
    repetitions: int = 7
    min_sample_s: float = 0.05
    max_case_s: float = 20.0


@dataclass
class Measurement:
    """One contender's result in one case: ``value`` in the case's unit (median), or why not."""

    name: str
    value: Optional[float] = None
    samples: list[float] = field(default_factory=list)  # seconds per call, one per repetition
    calls_per_sample: int = 0
    missing: Optional[str] = None
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.value is not None


@dataclass
class CaseResult:
    name: str
    group: str
    unit: str
    higher_is_better: bool
    measurements: list[Measurement]
    note: str = ""

    def get(self, name: str) -> Optional[Measurement]:
        return next((m for m in self.measurements if m.name == name), None)

    def advantage(self, anchor: str) -> Optional[float]:
        """cnnrs's advantage over ``anchor`` (> 1: cnnrs better), None if either has no value."""
        return advantage(self.get(SUBJECT), self.get(anchor), self.higher_is_better)

    @property
    def anchors(self) -> list[str]:
        return [m.name for m in self.measurements if m.name != SUBJECT]


def advantage(
    subject: Optional[Measurement], anchor: Optional[Measurement], higher_is_better: bool
) -> Optional[float]:
    if subject is None or anchor is None or not subject.ok or not anchor.ok:
        return None
    if higher_is_better:
        return subject.value / anchor.value if anchor.value else None
    return anchor.value / subject.value if subject.value else None


def median(values: list[float]) -> float:
    return statistics.median(values)


def _time_calls(run: Callable[[], object], calls: int, clock: Callable[[], float]) -> float:
    """Seconds per call of ``calls`` back-to-back calls."""
    start = clock()
    for _ in range(calls):
        run()
    return (clock() - start) / calls


def time_alternating(
    runs: dict[str, Callable[[], object]],
    settings: Settings,
    clock: Callable[[], float] = time.perf_counter,
    first_call_s: Optional[dict[str, float]] = None,
    settle_s: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Time every callable in ``runs`` alternately: warm-up, then A B A B ... repetitions.

    Returns the seconds per call of each repetition, by name, and how many calls
    each sample made. The number of calls per sample is set from the warm-up so
    that a sample lasts about ``settings.min_sample_s``. ``first_call_s``: the
    durations of a call each already made (it counts as the first warm-up round).
    When a round of all contenders would make the case exceed ``max_case_s``,
    the repetitions are lowered, down to 1 for very slow work (the sample
    count is in the results; the report flags cases with few samples).
    ``settle_s``: a pause before every sample (and warm-up call), for anchors
    whose worker threads keep spinning after a call returns (OpenBLAS spins
    about 0.1 s of a core): without it each such anchor would take a core away
    from whichever contender runs next, and the ratio would measure that.
    After the pause, untimed calls for ``WARM_AFTER_SETTLE_S`` (at least one)
    wake the contender's own threads and bring the core, its caches and TLB
    back from the pause, so that the sample measures back-to-back calls, as
    without the pause, and not how fast a library's parked threads wake
    (OpenBLAS's took up to 10 ms) or how long this VM's idle core takes to
    get up to speed (a single waking call left the GEMM n=64 samples with a
    31 % IQR, 15 % under their steady rate).
    """
    one_call: dict[str, float] = dict(first_call_s or {})
    warmup_rounds = settings.warmup - (1 if first_call_s else 0)
    for _ in range(max(0 if first_call_s else 1, warmup_rounds)):
        for name, run in runs.items():
            if settle_s:
                sleep(settle_s)
            one_call[name] = _time_calls(run, 1, clock)
    calls = {name: max(1, math.ceil(settings.min_sample_s / max(one_call[name], 1e-9))) for name in runs}
    round_s = sum(calls[name] * one_call[name] for name in runs)
    repetitions = settings.repetitions
    if round_s > 0 and round_s * repetitions > settings.max_case_s:
        repetitions = max(1, min(repetitions, int(settings.max_case_s // round_s)))
    # Never more than a sample's own calls (a fast call's sample is already short).
    warm_calls = {
        name: min(calls[name], max(1, math.ceil(WARM_AFTER_SETTLE_S / max(one_call[name], 1e-9))))
        for name in runs
    }
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repetitions):
        for name, run in runs.items():
            if settle_s:
                sleep(settle_s)
                _time_calls(run, warm_calls[name], clock)  # wakes threads and core; not timed
            samples[name].append(_time_calls(run, calls[name], clock))
    return samples, calls


def relative_spread(samples: list[float]) -> Optional[float]:
    """Interquartile range / median of the samples (None below 3 samples): how noisy a median is."""
    if len(samples) < 3:
        return None
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return (q3 - q1) / statistics.median(samples)


def measure_case(
    case: Case, settings: Settings, clock: Callable[[], float] = time.perf_counter
) -> CaseResult:
    """Build the case's contenders and time the runnable ones side by side.

    A failure while building or running a contender is recorded as that
    contender's error and does not stop the suite.
    """
    try:
        contenders = case.build()
    except Exception as exc:  # the case could not be set up at all: report it, keep going
        return CaseResult(
            case.name,
            case.group,
            case.unit,
            True,
            [Measurement(SUBJECT, error=_describe(exc))],
            note=case.note,
        )
    measurements = {c.name: Measurement(c.name, missing=c.missing) for c in contenders}
    runs = {c.name: c.run for c in contenders if c.run is not None}
    # A contender that fails on its first call is set aside, the others still race.
    first_call_s = {}
    for name, run in list(runs.items()):
        try:
            first_call_s[name] = _time_calls(run, 1, clock)
        except Exception as exc:
            measurements[name].error = _describe(exc)
            del runs[name]
    if runs:
        samples, calls = time_alternating(runs, settings, clock, first_call_s, settle_s=case.settle_s)
        for name, per_call in samples.items():
            m = measurements[name]
            m.samples = per_call
            m.calls_per_sample = calls[name]
            m.value = case.work / median(per_call)
    return CaseResult(
        case.name, case.group, case.unit, True, [measurements[c.name] for c in contenders], note=case.note
    )


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 200 else text[:197] + "..."
