"""Expands iCalendar resources with recurring-ical-events: the reference calsync must agree with.

Reads JSON from stdin: {"start": ISO, "end": ISO, "resources": {name: ics text}, "repeat": N?}.
Writes JSON to stdout: {"occurrences": {name: [starts in UTC, "YYYY-MM-DDTHH:MM:SSZ"]},
"count": occurrences per round, "seconds": time of all rounds (parse + expand)}.
All-day occurrences are reported as midnight UTC of their date; cancelled ones are left out.
"""

import datetime as dt
import json
import sys
import time

import icalendar
import recurring_ical_events


def utc(value):
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value.strftime("%Y-%m-%dT00:00:00Z")


def expand(resources, start, end):
    out = {}
    for name, text in resources.items():
        calendar = icalendar.Calendar.from_ical(text)
        events = recurring_ical_events.of(calendar).between(start, end)
        # A cancelled occurrence is not on the calendar (the reference returns it, marked).
        out[name] = sorted(
            utc(e["DTSTART"].dt)
            for e in events
            if e.name == "VEVENT" and str(e.get("STATUS", "")).upper() != "CANCELLED"
        )
    return out


def main():
    request = json.load(sys.stdin)
    start = dt.datetime.fromisoformat(request["start"].replace("Z", "+00:00"))
    end = dt.datetime.fromisoformat(request["end"].replace("Z", "+00:00"))
    rounds = max(1, int(request.get("repeat", 1)))
    began = time.perf_counter()
    for _ in range(rounds):
        occurrences = expand(request["resources"], start, end)
    seconds = time.perf_counter() - began
    count = sum(len(v) for v in occurrences.values())
    json.dump({"occurrences": occurrences, "count": count, "seconds": seconds}, sys.stdout)


if __name__ == "__main__":
    main()
