"""Bar charts of usage per day, stacked by profile, laid out for an inline SVG (pure: the template
``_usage_chart.html`` only draws what this computes). No script and no outside asset: the page's
own markup holds the picture, and each bar carries its number (``data-value``, ``<title>``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from service.usage.daily import days_of
from service.usage.report import Report

# Okabe & Ito's palette: told apart with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
WIDTH, HEIGHT = 560, 200  # the viewBox; the SVG scales to the page's width (text about 13 px on a desktop)
LEFT, RIGHT, TOP, BOTTOM = 40, 6, 10, 22
MAX_LABELS = 8  # day labels under the axis


@dataclass(frozen=True)
class Segment:
    profile: str
    value: float
    colour: str
    y: float
    height: float


@dataclass(frozen=True)
class Day:
    day: date
    total: float
    x: float
    width: float
    label: str
    segments: list[Segment] = field(default_factory=list)


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    unit: str
    top: float  # the value at the top of the axis
    days: list[Day]
    legend: list[tuple[str, str]]  # (profile, colour)
    ticks: list[tuple[float, str]]  # (y, label)
    width: int = WIDTH
    height: int = HEIGHT
    plot_left: int = LEFT
    plot_top: int = TOP
    plot_right: int = WIDTH - RIGHT
    baseline: int = HEIGHT - BOTTOM


def nice_top(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k at or above ``value`` (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value - 1e-12:
            return float(step * power)
    return float(10 * power)  # pragma: no cover: 10 always fits


def colours_of(profiles: set[str]) -> dict[str, str]:
    return {profile: PALETTE[n % len(PALETTE)] for n, profile in enumerate(sorted(profiles))}


def bar_chart(chart_id: str, title: str, unit: str, days: list[date], values: Mapping[tuple[date, str], float],
              colours: Mapping[str, str] | None = None) -> Chart:
    """One bar per day in ``days`` (zero when nothing ran), stacked by profile, in profile order.
    ``colours``: profile → colour, to keep a profile's colour across charts (default: by name)."""
    profiles = sorted({profile for _, profile in values})
    colours = colours or colours_of(set(profiles))
    totals = {day: sum(values.get((day, p), 0.0) for p in profiles) for day in days}
    top = nice_top(max(totals.values(), default=0.0))
    baseline, plot_height = HEIGHT - BOTTOM, HEIGHT - BOTTOM - TOP
    slot = (WIDTH - LEFT - RIGHT) / max(len(days), 1)
    every = max(1, math.ceil(len(days) / MAX_LABELS))
    drawn: list[Day] = []
    for index, day in enumerate(days):
        y, segments = float(baseline), []
        for profile in profiles:
            value = values.get((day, profile), 0.0)
            if value <= 0:
                continue
            height = value / top * plot_height
            y -= height
            segments.append(Segment(profile, value, colours[profile], round(y, 2), round(height, 2)))
        drawn.append(Day(day, totals[day], round(LEFT + index * slot + slot * 0.1, 2), round(slot * 0.8, 2),
                         day.strftime("%m-%d") if index % every == 0 else "", segments))
    ticks = [(round(baseline - plot_height * share, 2), f"{top * share:g}") for share in (0, 0.5, 1)]
    return Chart(chart_id, title, unit, top, drawn, [(p, colours[p]) for p in profiles], ticks)


def usage_charts(report: Report) -> list[Chart]:
    """Server hours and Dask core-hours per day by profile, over the report's range; [] when the
    range is too long to draw day by day (the table still shows it)."""
    days = days_of(report.start, report.end)
    if not days:
        return []
    colours = colours_of({profile for _, profile in report.server_days} | {p for _, p in report.dask_days})
    return [bar_chart("titan-chart-server", "Server hours per day, by profile", "hours", days, report.server_days,
                      colours),
            bar_chart("titan-chart-dask", "Dask core-hours per day, by profile", "core-hours", days,
                      report.dask_days, colours)]
