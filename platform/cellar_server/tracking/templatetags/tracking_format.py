"""Display helpers for the tracking pages: epoch-millisecond times, durations, metric values, table cells."""

from __future__ import annotations

from datetime import UTC, datetime

from django import template
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from cellar_server.tracking.dashboards import format_duration, format_metric, script_json

register = template.Library()


@register.filter
def ms_datetime(value: int | None) -> datetime | None:
    """Epoch milliseconds (MLflow's wire format) → an aware UTC datetime for the `date` filter."""
    if value in (None, ""):
        return None
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


@register.filter
def run_duration(run) -> str:
    if run.end_time is None and run.status == "RUNNING":
        return "running"
    return format_duration(run.start_time, run.end_time)


@register.filter
def metric_value(metric) -> str:
    """A LatestMetric (or a (value, is_nan) pair) as six significant digits; NaN and ±∞ spelled out."""
    if metric is None:
        return "—"
    if isinstance(metric, tuple):
        return format_metric(*metric)
    return format_metric(metric.value, metric.is_nan)


@register.filter
def cell(value) -> str:
    """A runs-table cell: metric pairs formatted, strings as they are, missing as a dash."""
    if value is None:
        return "—"
    if isinstance(value, tuple):
        return format_metric(*value)
    return value


@register.filter
def status_class(status: str) -> str:
    return {"FINISHED": "ok", "RUNNING": "running", "FAILED": "failed", "KILLED": "failed"}.get(status, "")


@register.filter
def elided(paginator, number):
    """Page numbers around the current one, with "…" for the gaps (1 2 … 7 8 9 … 200)."""
    return list(paginator.get_elided_page_range(number, on_each_side=2, on_ends=1))


@register.filter
def is_metric(value) -> bool:
    return isinstance(value, tuple)


@register.filter
def json_script_compact(value, element_id: str = "") -> str:
    """Like `json_script`, without the spaces (plot data is mostly numbers) and refusing NaN, which JSON lacks."""
    data = mark_safe(script_json(value))  # script_json escapes <, > and & for a <script> element
    if element_id:
        return format_html('<script id="{}" type="application/json">{}</script>', element_id, data)
    return format_html('<script type="application/json">{}</script>', data)
