"""Expands iCalendar resources with recurring-ical-events: the reference calsync must agree with.

Reads JSON from stdin: {"start": ISO, "end": ISO, "resources": {name: ics text}, "repeat": N?,
"windows": {name: [start ISO, end ISO]}?} (a resource listed in "windows" is expanded over its own
window instead of start..end), "by_uid": true? (each resource's occurrences grouped by UID),
"summaries": true? (each occurrence as "start|SUMMARY").
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


def instant(text):
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def expand(resources, start, end, windows, by_uid=False, summaries=False):
    out = {}
    for name, text in resources.items():
        # Each resource is read on its own, as the sync reads it: icalendar caches VTIMEZONEs by
        # TZID process-wide, so one resource's VTIMEZONE would otherwise decide how another
        # resource's unknown TZID of the same name is read.
        icalendar.timezone.tzp.use_default()
        calendar = icalendar.Calendar.from_ical(text)
        # of() also applies X-WR-TIMEZONE (x_wr_timezone.to_standard) before expanding.
        first, last = windows.get(name, (start, end))
        # A cancelled occurrence is not on the calendar (the reference returns it, marked).
        events = [
            e
            for e in recurring_ical_events.of(calendar).between(first, last)
            if e.name == "VEVENT" and str(e.get("STATUS", "")).upper() != "CANCELLED"
        ]
        if by_uid:
            # A whole calendar (the ICS feed): occurrences grouped by UID.
            grouped = {}
            for e in events:
                grouped.setdefault(str(e.get("UID", "")), []).append(utc(e["DTSTART"].dt))
            out[name] = {uid: sorted(starts) for uid, starts in grouped.items()}
        elif summaries:
            out[name] = sorted(f'{utc(e["DTSTART"].dt)}|{e.get("SUMMARY", "")}' for e in events)
        else:
            out[name] = sorted(utc(e["DTSTART"].dt) for e in events)
    return out


def main():
    request = json.load(sys.stdin)
    start = instant(request["start"])
    end = instant(request["end"])
    windows = {
        name: (instant(first), instant(last))
        for name, (first, last) in request.get("windows", {}).items()
    }
    rounds = max(1, int(request.get("repeat", 1)))
    began = time.perf_counter()
    for _ in range(rounds):
        occurrences = expand(
            request["resources"],
            start,
            end,
            windows,
            bool(request.get("by_uid")),
            bool(request.get("summaries")),
        )
    seconds = time.perf_counter() - began
    count = sum(len(v) for v in occurrences.values())
    json.dump({"occurrences": occurrences, "count": count, "seconds": seconds}, sys.stdout)


if __name__ == "__main__":
    main()
