"""What the results page shows beside the analysis: arm names and links, and a finished test's outcome.

Arms are named by their model version ("churn v2", linking to the version page) next to their key
("b · churn v2"); a promoted or stopped test shows who ended it, when and why (from the audit log),
instead of a live decision.
"""

from __future__ import annotations

from typing import Any

from cellar_server.abtests import bridges
from cellar_server.abtests.models import ABTest
from cellar_server.teams.models import AuditEvent
from cellar_server.teams.selectors import AuditFilters, audit_event_list

ENDING_VERBS = {ABTest.PROMOTED: "abtest.promote", ABTest.STOPPED: "abtest.stop"}


def label_arms(*, test: ABTest, result: dict[str, Any]) -> dict[str, str]:
    """Adds name/url/display to each arm of `result` (in place); returns {arm key: display}.

    `display` is "b · churn v2" (the key alone when the version has no name); the decision summary's
    quoted arm keys and each comparison's `arm_display` use it too (`arm_name`: "churn v2" or "")."""
    displays: dict[str, str] = {}
    names: dict[str, str] = {}
    for arm in result["arms"]:
        info = bridges.version_info(team=test.team, version_id=arm["version_id"]) or {}
        name = f"{info['model']} v{info['version']}" if info.get("model") else ""
        arm["name"] = name or f"version {arm['version_id']}"
        arm["url"] = bridges.version_url(team=test.team, info=info)
        arm["display"] = f"{arm['key']} · {name}" if name else arm["key"]
        displays[arm["key"]] = arm["display"]
        names[arm["key"]] = name
    for metric in result["metrics"]:
        for comp in metric["comparisons"]:
            comp["arm_display"] = displays.get(comp["arm"], comp["arm"])
            comp["arm_name"] = names.get(comp["arm"], "")
    result["decision"]["summary"] = _named(result["decision"]["summary"], displays)
    return displays


def _named(text: str, displays: dict[str, str]) -> str:
    for key, display in displays.items():
        text = text.replace(f"'{key}'", f"'{display}'")
    return text


def _ending_event(test: ABTest) -> AuditEvent | None:
    verb = ENDING_VERBS.get(test.status)
    if verb is None:
        return None
    events = audit_event_list(team=test.team, filters=AuditFilters(verb=verb))
    return events.filter(target_type="abtest", target_id=str(test.pk)).first()


def outcome(*, test: ABTest, arms: list[dict[str, Any]], displays: dict[str, str]) -> dict[str, Any] | None:
    """For a promoted or stopped test: {"status", "title", "by", "at", "reason", "decision", ...}; else None.

    `decision` is the summary recorded when it was promoted (arm keys shown as `displays`)."""
    if test.status not in ENDING_VERBS:
        return None
    event = _ending_event(test)
    details = (event.details if event else {}) or {}
    by = (event.actor_name if event else "") or "someone"
    at = event.created_at if event else test.stopped_at
    if test.status == ABTest.PROMOTED:
        arm = next((a for a in arms if a["key"] == test.winner_arm), None)
        if arm is None:
            title = f"Promoted: {test.winner_arm} is the champion and serves 100%"
        else:
            title = f"Promoted: {arm['key']} ({arm['name']}) is the champion and serves 100%"
        return {
            "status": test.status,
            "title": title,
            "by": by,
            "at": at,
            "reason": details.get("reason") or "",
            "decision": _named(details.get("decision") or "", displays),
            "forced": details.get("ready") is False,
            "arm": arm,
        }
    return {
        "status": test.status,
        "title": "Stopped without a winner: no version was promoted",
        "by": by,
        "at": at,
        "reason": details.get("reason") or "",
        "decision": "",
        "forced": False,
        "arm": None,
    }
