"""When a CLI's usage limit resets, read from its error text (``quotaResetAtMs``).

A coding CLI that hits its plan's usage limit says when it resets in prose; the
fact sheets (../shared/reference) give these forms, all of them marked uncertain
there (they cannot be reproduced offline), so the parser is tolerant and returns None
when it finds no time rather than guessing:

- Claude Code: ``You've hit your limit · resets 5pm (UTC)`` and ``You've hit your
  ${limit}. It resets ${time}.`` (a clock time, sometimes with a date such as
  ``Dec 3, 5pm``, and an IANA zone in parentheses; without a zone it is this
  machine's local time); older releases printed ``Claude AI usage limit
  reached|<unix seconds>``.
- Codex: ``… or try again in 4 days 2 hours 30 minutes`` / ``try again at <time>``.
- Gemini CLI (the Gemini API's quota errors): ``Please retry in 39.5s``.
- Any of them: an ISO 8601 timestamp after "reset"/"try again"/"retry".

A clock time without a date is its next occurrence from now. Pure but for reading
the local zone when the text names none.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ("parse_reset_at_ms",)

_EPOCH = re.compile(r"limit reached\|(\d{10,13})\b", re.I)
_ISO = re.compile(
    r"(?:reset|try again|retry)\w*\s+(?:at\s+|on\s+)?"
    r"(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)",
    re.I,
)
_UNITS = {
    "d": 86_400_000,
    "day": 86_400_000,
    "h": 3_600_000,
    "hr": 3_600_000,
    "hour": 3_600_000,
    "m": 60_000,
    "min": 60_000,
    "minute": 60_000,
    "s": 1_000,
    "sec": 1_000,
    "second": 1_000,
}
_PART = r"(\d+(?:\.\d+)?)\s*(days?|d|hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s)\b"
_RELATIVE = re.compile(
    r"(?:resets?|try again|retry)\w*\s+in\s+((?:" + _PART + r"[\s,]*(?:and\s+)?)+)", re.I
)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_CLOCK = re.compile(
    r"(?:resets?|try again|retry)\w*\s+(?:at\s+|on\s+)?"
    r"(?:(?P<mon>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+(?P<day>\d{1,2})"
    r"(?:st|nd|rd|th)?,?\s+(?:at\s+)?)?"
    r"(?P<hour>\d{1,2})(?::(?P<min>\d{2}))?\s*(?P<ampm>[ap]\.?m\.?)?"
    r"(?:\s*\((?P<zone>[A-Za-z_+\-/0-9]+)\))?",
    re.I,
)


def _relative_ms(text: str) -> int | None:
    match = _RELATIVE.search(text)
    if match is None:
        return None
    total = 0.0
    for amount, unit in re.findall(_PART, match.group(1), re.I):
        key = unit.lower().rstrip("s") if len(unit) > 1 else unit.lower()
        total += float(amount) * _UNITS.get(key, _UNITS.get(key[:1], 0))
    return int(total) if total > 0 else None


def _zone(name: str | None) -> dt.tzinfo | None:
    """The zone a text names (``UTC``, ``Europe/Paris``), None for local time."""
    if not name:
        return None
    if name.upper() in ("UTC", "GMT", "Z"):
        return dt.UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _clock_ms(text: str, now_ms: int) -> int | None:
    match = _CLOCK.search(text)
    if match is None:
        return None
    hour = int(match["hour"])
    minute = int(match["min"] or 0)
    ampm = (match["ampm"] or "").lower().replace(".", "")
    if not ampm and match["min"] is None:
        return None  # a bare number ("retry 3 times") is no clock time
    if ampm:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if ampm == "pm" else 0)
    if hour > 23 or minute > 59:
        return None
    zone = _zone(match["zone"])
    now = dt.datetime.fromtimestamp(now_ms / 1000, tz=zone or dt.UTC)
    if zone is None:
        now = now.astimezone()  # this machine's local zone
    if match["mon"]:
        month = _MONTHS.index(match["mon"][:3].lower()) + 1
        try:
            at = now.replace(month=month, day=int(match["day"]), hour=hour, minute=minute)
        except ValueError:
            return None
        at = at.replace(second=0, microsecond=0)
        if at < now - dt.timedelta(days=1):
            at = at.replace(year=at.year + 1)  # "Jan 2" said on Dec 31
    else:
        at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if at <= now:
            at += dt.timedelta(days=1)
    return int(at.timestamp() * 1000)


def parse_reset_at_ms(text: str, *, now_ms: int) -> int | None:
    """The Unix epoch ms a usage limit resets at, as a CLI's error `text` says.

    Args:
        text: The CLI's error message (a result line's text, stderr).
        now_ms: The current Unix epoch ms: relative times count from it, and a clock
            time without a date is its next occurrence after it.

    Returns:
        The reset time in Unix epoch ms, or None if the text names none (or names
        one in a form this parser does not know).
    """
    match = _EPOCH.search(text)
    if match is not None:
        value = int(match.group(1))
        return value if value > 10**12 else value * 1000
    match = _ISO.search(text)
    if match is not None:
        raw = match.group(1).replace(" ", "T").replace("Z", "+00:00")
        try:
            at = dt.datetime.fromisoformat(raw)
        except ValueError:
            at = None
        if at is not None:
            if at.tzinfo is None:
                at = at.astimezone()
            return int(at.timestamp() * 1000)
    relative = _relative_ms(text)
    if relative is not None:
        return now_ms + relative
    return _clock_ms(text, now_ms)
