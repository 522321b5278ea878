"""Expands iCalendar resources with recurring-ical-events: the reference calsync must agree with.

Reads JSON from stdin: {"start": ISO, "end": ISO, "resources": {name: ics text}}.
Writes JSON to stdout: {name: [occurrence starts in UTC, "YYYY-MM-DDTHH:MM:SSZ"]}, sorted.
All-day occurrences are reported as midnight UTC of their date.
"""

import datetime as dt
import json
import sys

import icalendar
import recurring_ical_events


def utc(value):
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value.strftime("%Y-%m-%dT00:00:00Z")


def main():
    request = json.load(sys.stdin)
    start = dt.datetime.fromisoformat(request["start"].replace("Z", "+00:00"))
    end = dt.datetime.fromisoformat(request["end"].replace("Z", "+00:00"))
    out = {}
    for name, text in request["resources"].items():
        calendar = icalendar.Calendar.from_ical(text)
        events = recurring_ical_events.of(calendar).between(start, end)
        # A cancelled occurrence is not on the calendar (the reference returns it, marked).
        out[name] = sorted(
            utc(e["DTSTART"].dt)
            for e in events
            if e.name == "VEVENT" and str(e.get("STATUS", "")).upper() != "CANCELLED"
        )

    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
