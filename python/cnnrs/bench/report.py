"""Print, save (JSON) and plot (PNG) the suite's results.

The table has one row per case: each contender's median in the case's unit,
then cnnrs's advantage over each anchor (> 1: cnnrs better; throughput
cnnrs / anchor, or anchor / cnnrs for lower-is-better metrics). An anchor that
is not installed reads "missing"; a contender that failed reads "error" with
the message listed under the table. A blank cell means the anchor does not do
that case (numpy has no convolution).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Optional

from .timing import SUBJECT, CaseResult, Measurement, relative_spread


def _anchor_names(results: list[CaseResult]) -> list[str]:
    names: list[str] = []
    for r in results:
        for name in r.anchors:
            if name not in names:
                names.append(name)
    return names


def _number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _cell(m: Optional[Measurement]) -> str:
    if m is None:
        return ""
    if m.ok:
        return _number(m.value)
    if m.missing:
        return "missing"
    if m.error:
        return "error"
    return "-"


def _ratio_cell(result: CaseResult, anchor: str) -> str:
    if result.get(anchor) is None:
        return ""
    ratio = result.advantage(anchor)
    return "-" if ratio is None else f"{ratio:.2f}x"


def _spread_cell(result: CaseResult) -> str:
    """The largest relative interquartile range among the contenders' timed samples."""
    spreads = [relative_spread(m.samples) for m in result.measurements if m.ok and result.higher_is_better]
    spreads = [s for s in spreads if s is not None]
    return f"{max(spreads):.0%}" if spreads else ""


def format_table(results: list[CaseResult], header: str = "") -> str:
    """The results as a plain-text table, grouped, with notes and errors listed below."""
    anchors = _anchor_names(results)
    columns = ["case", "unit", SUBJECT, *anchors, *[f"vs {a}" for a in anchors], "IQR"]
    rows: list[list[str]] = []
    footnotes: list[str] = []
    group = None
    for r in results:
        if r.group != group:
            group = r.group
            rows.append([f"[{group}]"] + [""] * (len(columns) - 1))
        unit = r.unit + ("" if r.higher_is_better else " (lower better)")
        cells = [r.name, unit, _cell(r.get(SUBJECT))]
        cells += [_cell(r.get(a)) for a in anchors]
        cells += [_ratio_cell(r, a) for a in anchors]
        cells.append(_spread_cell(r))
        rows.append(cells)
        for m in r.measurements:
            if m.ok and r.higher_is_better and len(m.samples) < 3:
                footnotes.append(
                    f"{r.name} [{m.name}]: only {len(m.samples)} timed sample(s), too slow for more"
                )
            if m.error:
                footnotes.append(f"{r.name} [{m.name}] error: {m.error}")
            elif m.missing:
                footnotes.append(f"{r.name} [{m.name}] missing: {m.missing}")
        if r.note:
            footnotes.append(f"{r.name}: {r.note}")
    widths = [
        max(len(columns[i]), *(len(row[i]) for row in rows)) if rows else len(columns[i])
        for i in range(len(columns))
    ]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:]))]).rstrip()

    out = [header] if header else []
    out += [line(columns), line(["-" * w for w in widths])]
    out += [line(row) for row in rows]
    out.append("")
    out.append("vs X: cnnrs's advantage over X, > 1 means cnnrs is better (faster / smaller).")
    out.append(
        "IQR: largest interquartile range / median of a contender's samples (how noisy the medians are)."
    )
    out += _deduplicated(footnotes)
    return "\n".join(out)


def _deduplicated(lines: list[str]) -> list[str]:
    seen: set[str] = set()
    kept = []
    for text in lines:
        if text not in seen:
            seen.add(text)
            kept.append(text)
    return kept


def to_json(results: list[CaseResult], meta: dict) -> dict:
    """A JSON-able dict: the run's metadata, every measurement with its samples, and the ratios."""
    cases = []
    for r in results:
        entry = asdict(r)
        entry["advantage"] = {a: r.advantage(a) for a in r.anchors}
        cases.append(entry)
    return {"meta": meta, "cases": cases}


def save_json(results: list[CaseResult], meta: dict, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(to_json(results, meta), f, indent=2)
        f.write("\n")


def save_png(results: list[CaseResult], path: str, title: str = "") -> None:
    """A horizontal bar chart of cnnrs's advantage over each anchor (log scale, 1 = parity).

    One bar per (case, anchor) that has a ratio, coloured by anchor; anchors
    without any ratio (not installed) are named in the legend as missing.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    anchors = _anchor_names(results)
    rows = [(r.name, a, r.advantage(a)) for r in results for a in r.anchors if r.advantage(a) is not None]
    colours = {a: f"C{i}" for i, a in enumerate(anchors)}
    fig, ax = plt.subplots(figsize=(9, 0.28 * max(1, len(rows)) + 1.6))
    for y, (_, anchor, ratio) in enumerate(rows):
        ax.barh(y, ratio, color=colours[anchor], height=0.7)
        ax.annotate(
            f"{ratio:.2f}x", (ratio, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7
        )
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([name for name, _, _ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xlabel("cnnrs advantage (> 1: cnnrs faster / smaller)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[a]) for a in anchors]
    with_ratio = {a for _, a, _ in rows}
    labels = [f"vs {a}" if a in with_ratio else f"vs {a} (missing)" for a in anchors]
    if handles:
        ax.legend(handles, labels, loc="lower right", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
