#!/usr/bin/env python3
"""Checks the provider emulator's Google side against Google's own published artefacts.

    python check_google.py http://127.0.0.1:PORT

1. Runs the OAuth 2.0 authorization-code flow with PKCE (S256) against the emulator by hand:
   authorize, read the 302 without following it, exchange the code, refresh.
2. Validates every calendarList page (maxResults=1, walked to the end, and one default page)
   against the `CalendarList` / `CalendarListEntry` schemas of the Calendar v3 discovery document
   shipped in google-api-python-client: each emitted field must exist with the right JSON type
   (and, where the document lists the possible values, one of them); the fields calsync relies on
   must be present.
3. Lists the calendars once more through google-api-python-client itself (built from that same
   discovery document, pointed at the emulator), including its `list_next` paging, and has the
   library's `HttpError` parse the emulator's 401 body.
4. Events: validates every events.list page against the `Events` / `Event` schemas — a full sync
   over short and empty pages (admin setting `shortPages`), an incremental sync carrying a
   deleted event (the minimal cancelled form) and a cancelled instance of a series — checks that
   `nextSyncToken` comes only on the last page, pages through the same listing with the client
   library's `events().list_next`, and has `HttpError` read the 410 `fullSyncRequired` answer
   after the emulator's sync tokens are invalidated.
5. events.instances of the sample weekly series: every page against `Events` / `Event` (no
   nextSyncToken), the library's `instances_next` paging, `showDeleted`, `originalStart`, 404.
6. Push notifications: opens a channel with the library's own `googleapiclient.channel`
   (`new_webhook_channel`, `events().watch`, `channel.update`) to a receiver on 127.0.0.1,
   validates the watch answer against the `Channel` schema, has the library's
   `notification_from_headers` read the `sync` message and the `exists` message of a change
   (plus the token and RFC 1123 expiration headers), stops the channel with `channels().stop`,
   checks that a second stop is a 404 `HttpError` and that the channel then stays silent.

Only the emulator is contacted. Exits non-zero with one line per mismatch.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import re
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request
import zoneinfo

import email.utils

import googleapiclient
import googleapiclient.channel
import googleapiclient.discovery
import googleapiclient.errors
import httplib2

from webhook_receiver import WebhookReceiver

CLIENT_ID = "fidelity-check.apps.googleusercontent.test"
CLIENT_SECRET = "fidelity-secret"
REDIRECT_URI = "http://127.0.0.1:1/oauth/callback"  # never contacted: the 302 is read, not followed
SCOPE = "https://www.googleapis.com/auth/calendar.readonly"
ACCOUNT = "alice@gmail.test"

# Fields calsync reads from each calendarList entry / page.
REQUIRED_ENTRY = [
    "kind", "etag", "id", "summary", "timeZone", "colorId", "backgroundColor",
    "foregroundColor", "accessRole", "defaultReminders", "conferenceProperties",
]
REQUIRED_LIST = ["kind", "etag", "items"]
# Fields calsync reads from events.list pages and events; a cancelled event is only guaranteed
# to carry id and status (plus recurringEventId / originalStartTime for an instance).
REQUIRED_EVENTS = ["kind", "etag", "summary", "updated", "timeZone", "accessRole",
                   "defaultReminders", "items"]
REQUIRED_EVENT = ["kind", "etag", "id", "status", "htmlLink", "created", "updated", "creator",
                  "organizer", "start", "end", "iCalUID", "sequence", "reminders", "eventType"]
RFC3339_UTC_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
# Documented in Google's OAuth 2.0 for Web Server Applications guide.
TOKEN_FIELDS = {"access_token", "expires_in", "refresh_token", "scope", "token_type", "id_token",
                "refresh_token_expires_in"}

errors: list[str] = []


def fail(message: str) -> None:
    errors.append(message)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: D102 - read the 302 ourselves
        return None


OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect)


def http(method: str, url: str, *, form: dict | None = None, headers: dict | None = None):
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if form is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with OPENER.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def load_discovery() -> dict:
    path = os.path.join(os.path.dirname(googleapiclient.__file__), "discovery_cache", "documents",
                        "calendar.v3.json")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# ------------------------------------------------------------------------------------------------
# Schema validation against the discovery document


def documented_values(schema: dict) -> list[str] | None:
    """The `enum`, or the values a description lists as 'Possible values are: - "x" ...'."""
    if "enum" in schema:
        return schema["enum"]
    description = schema.get("description", "")
    if re.search(r"possible values (are|is)", description, re.IGNORECASE):
        values = re.findall(r'^\s*-\s*"([^"]+)"', description, re.MULTILINE)
        return values or None
    return None


def validate(value, schema: dict, schemas: dict, path: str) -> None:
    if "$ref" in schema:
        schema = schemas[schema["$ref"]]
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            return fail(f"{path}: expected an object, got {type(value).__name__}")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in properties:
                validate(item, properties[key], schemas, f"{path}.{key}")
            elif extra is not None:
                validate(item, extra, schemas, f"{path}[{key!r}]")
            else:
                fail(f"{path}.{key}: not a field of {schema.get('id', 'this object')} in the discovery document")
    elif kind == "array":
        if not isinstance(value, list):
            return fail(f"{path}: expected an array, got {type(value).__name__}")
        for i, item in enumerate(value):
            validate(item, schema["items"], schemas, f"{path}[{i}]")
    elif kind == "string":
        if not isinstance(value, str):
            return fail(f"{path}: expected a string, got {json.dumps(value)}")
        if schema.get("format") in ("int64", "uint64") and not re.fullmatch(r"-?\d+", value):
            fail(f"{path}: {schema['format']} string expected, got {value!r}")
        allowed = documented_values(schema)
        if allowed and value not in allowed:
            fail(f"{path}: {value!r} is not one of the documented values {allowed}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            fail(f"{path}: expected a boolean, got {json.dumps(value)}")
    elif kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            fail(f"{path}: expected an integer, got {json.dumps(value)}")
    elif kind == "number":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            fail(f"{path}: expected a number, got {json.dumps(value)}")
    elif kind != "any":
        fail(f"{path}: the discovery document has type {kind!r}, which this check does not know")


def check_page(page: dict, schemas: dict, path: str) -> None:
    validate(page, {"$ref": "CalendarList"}, schemas, path)
    for field in REQUIRED_LIST:
        if field not in page:
            fail(f"{path}: required field {field!r} missing")
    if page.get("kind") != schemas["CalendarList"]["properties"]["kind"]["default"]:
        fail(f"{path}.kind: {page.get('kind')!r}")
    if ("nextPageToken" in page) == ("nextSyncToken" in page):
        fail(f"{path}: exactly one of nextPageToken / nextSyncToken must be present")
    entry_kind = schemas["CalendarListEntry"]["properties"]["kind"]["default"]
    for i, entry in enumerate(page.get("items", [])):
        where = f"{path}.items[{i}]"
        for field in REQUIRED_ENTRY:
            if field not in entry:
                fail(f"{where}: required field {field!r} missing")
        if entry.get("kind") != entry_kind:
            fail(f"{where}.kind: {entry.get('kind')!r}, expected {entry_kind!r}")
        for color in ("backgroundColor", "foregroundColor"):
            if color in entry and not re.fullmatch(r"#[0-9a-f]{6}", entry[color]):
                fail(f"{where}.{color}: {entry[color]!r} is not in the '#0088aa' format")
        if "colorId" in entry and not re.fullmatch(r"\d+", entry["colorId"]):
            fail(f"{where}.colorId: {entry['colorId']!r} is not a colors-endpoint id")
        if "etag" in entry and not re.fullmatch(r'"[^"]+"', entry["etag"]):
            fail(f"{where}.etag: {entry['etag']!r} is not a quoted entity tag")
        if isinstance(entry.get("timeZone"), str):
            try:
                zoneinfo.ZoneInfo(entry["timeZone"])
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                fail(f"{where}.timeZone: {entry['timeZone']!r} is not an IANA time zone")
        if "primary" in entry and entry["primary"] is not True:
            fail(f"{where}.primary: Google omits the field rather than sending {entry['primary']!r}")


def check_event_time(value, where: str, cal_tz_ok=True) -> None:
    if not isinstance(value, dict):
        return fail(f"{where}: not an object")
    if ("date" in value) == ("dateTime" in value):
        fail(f"{where}: exactly one of date / dateTime expected, got {value}")
    if "date" in value and not re.fullmatch(r"\d{4}-\d\d-\d\d", str(value["date"])):
        fail(f"{where}.date: {value['date']!r} is not yyyy-mm-dd")
    if "dateTime" in value and not RFC3339.fullmatch(str(value["dateTime"])):
        fail(f"{where}.dateTime: {value['dateTime']!r} is not RFC 3339 with an offset")
    if "timeZone" in value:
        try:
            zoneinfo.ZoneInfo(value["timeZone"])
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            fail(f"{where}.timeZone: {value['timeZone']!r} is not an IANA time zone")


def check_event(event: dict, schemas: dict, where: str) -> None:
    kind = schemas["Event"]["properties"]["kind"]["default"]
    if event.get("kind") != kind:
        fail(f"{where}.kind: {event.get('kind')!r}, expected {kind!r}")
    if not re.fullmatch(r'"[^"]+"', str(event.get("etag", ""))):
        fail(f"{where}.etag: {event.get('etag')!r} is not a quoted entity tag")
    if not re.fullmatch(r"[0-9a-v]{5,1024}(_\d{8}(T\d{6}Z)?)?", str(event.get("id", ""))):
        fail(f"{where}.id: {event.get('id')!r} is not a base32hex event id")
    minimal = event.get("status") == "cancelled" and "created" not in event
    if minimal:
        allowed = {"kind", "etag", "id", "status", "recurringEventId", "originalStartTime"}
        for field in set(event) - allowed:
            fail(f"{where}: the minimal cancelled form carries {field!r}")
        if "recurringEventId" in event:
            check_event_time(event.get("originalStartTime"), f"{where}.originalStartTime")
        return
    for field in REQUIRED_EVENT:
        if field not in event:
            fail(f"{where}: required field {field!r} missing")
    for field in ("created", "updated"):
        if field in event and not RFC3339_UTC_MS.fullmatch(str(event[field])):
            fail(f"{where}.{field}: {event[field]!r} is not RFC 3339 UTC with milliseconds")
    for field in ("start", "end", "originalStartTime"):
        if field in event:
            check_event_time(event[field], f"{where}.{field}")
    if ("recurringEventId" in event) != ("originalStartTime" in event):
        fail(f"{where}: recurringEventId and originalStartTime come together")
    for line in event.get("recurrence", []):
        if not re.match(r"(RRULE|EXRULE|RDATE|EXDATE)[:;]", line):
            fail(f"{where}.recurrence: {line!r} is not an RFC 5545 line")


def check_events_page(page: dict, schemas: dict, path: str) -> None:
    validate(page, {"$ref": "Events"}, schemas, path)
    for field in REQUIRED_EVENTS:
        if field not in page:
            fail(f"{path}: required field {field!r} missing")
    if page.get("kind") != schemas["Events"]["properties"]["kind"]["default"]:
        fail(f"{path}.kind: {page.get('kind')!r}")
    if ("nextPageToken" in page) == ("nextSyncToken" in page):
        fail(f"{path}: exactly one of nextPageToken / nextSyncToken must be present")
    for i, event in enumerate(page.get("items", [])):
        check_event(event, schemas, f"{path}.items[{i}]")


def walk_events(base: str, auth: dict, schemas: dict, what: str, **params) -> tuple[list, list, str]:
    """Every page of one events.list, validated; (pages, items, nextSyncToken)."""
    url = f"{base}/google/calendar/v3/calendars/primary/events"
    pages, items, page_token = [], [], None
    while len(pages) < 200:
        query = dict(params, **({"pageToken": page_token} if page_token else {}))
        status, headers, body = http("GET", f"{url}?{urllib.parse.urlencode(query)}", headers=auth)
        if status != 200:
            fail(f"{what} page {len(pages) + 1}: {status} {body[:300]!r}")
            break
        page = json.loads(body)
        pages.append(page)
        check_events_page(page, schemas, f"{what}(page {len(pages)})")
        items += page.get("items", [])
        page_token = page.get("nextPageToken")
        if not page_token:
            return pages, items, page.get("nextSyncToken", "")
    fail(f"{what}: paging did not end")
    return pages, items, ""


def check_instances(base: str, token: dict, schemas: dict, service) -> int:
    """events.instances of the sample weekly series: every page validated against `Events` /
    `Event`, the client library's own `instances_next` paging, showDeleted and originalStart."""
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    master = "seed0oneonone"
    url = f"{base}/google/calendar/v3/calendars/primary/events/{master}/instances"
    walked, page_token, pages = [], None, 0
    while pages < 100:
        pages += 1
        query = {"maxResults": 50, "showDeleted": "true", **({"pageToken": page_token} if page_token else {})}
        status, _, body = http("GET", f"{url}?{urllib.parse.urlencode(query)}", headers=auth)
        if status != 200:
            fail(f"instances page {pages}: {status} {body[:300]!r}")
            break
        page = json.loads(body)
        where = f"instances(page {pages})"
        validate(page, {"$ref": "Events"}, schemas, where)
        for field in REQUIRED_EVENTS:
            if field not in page:
                fail(f"{where}: required field {field!r} missing")
        if "nextSyncToken" in page:
            fail(f"{where}: events.instances takes no syncToken, so it hands none out")
        for i, event in enumerate(page.get("items", [])):
            check_event(event, schemas, f"{where}.items[{i}]")
            if event.get("recurringEventId") != master or not str(event.get("id", "")).startswith(f"{master}_"):
                fail(f"{where}.items[{i}]: not an instance of {master}: {event.get('id')!r}")
            if "recurrence" in event:
                fail(f"{where}.items[{i}]: an instance carries the master's recurrence")
        walked += page.get("items", [])
        page_token = page.get("nextPageToken")
        if not page_token:
            break
    if pages < 2:
        fail(f"instances: expected several pages of 50 for an endless weekly series, got {pages}")
    cancelled = [e for e in walked if e.get("status") == "cancelled"]
    if len(cancelled) != 1:
        fail(f"instances(showDeleted=true): expected this week's cancelled instance, got {len(cancelled)}")
    starts = [e["originalStartTime"].get("dateTime") for e in walked if "originalStartTime" in e]
    if starts != sorted(starts, key=lambda t: datetime.datetime.fromisoformat(t)):
        fail("instances: not in original-start order")

    # The client library pages with its own instances_next; without showDeleted the cancelled
    # instance is left out.
    listed, request = [], service.events().instances(calendarId="primary", eventId=master, maxResults=50)
    while request is not None and len(listed) < 5000:
        response = request.execute()
        listed += [e["id"] for e in response.get("items", [])]
        request = service.events().instances_next(request, response)
    expected = [e["id"] for e in walked if e.get("status") != "cancelled"]
    if listed != expected:
        fail(f"google-api-python-client instances_next listed {len(listed)} instances, expected {len(expected)}")
    if cancelled:
        one = service.events().instances(calendarId="primary", eventId=master, showDeleted=True,
                                         originalStart=cancelled[0]["originalStartTime"]["dateTime"]).execute()
        if [e["id"] for e in one.get("items", [])] != [cancelled[0]["id"]]:
            fail(f"instances(originalStart): {one.get('items')}")
    try:
        service.events().instances(calendarId="primary", eventId="nosuchevent0").execute()
        fail("instances of an unknown event: no error")
    except googleapiclient.errors.HttpError as error:
        if error.status_code != 404:
            fail(f"instances of an unknown event: HttpError {error.status_code}")
    return len(walked)


def admin(base: str, method: str, path: str, body=None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{base}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with OPENER.open(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


def check_events(base: str, token: dict, schemas: dict, service) -> tuple[int, int]:
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    admin(base, "PUT", "/admin/settings", {"shortPages": True})
    pages, items, sync_token = walk_events(base, auth, schemas, "events(full)", maxResults=3)
    sizes = [len(p.get("items", [])) for p in pages]
    if not any(n == 0 and "nextPageToken" in p for n, p in zip(sizes, pages)):
        fail(f"events(full): shortPages gave no empty page before the end: {sizes}")
    if not sync_token:
        fail("events(full): no nextSyncToken on the last page")
    truth = admin(base, "GET", "/admin/google/calendars/primary/events")
    expected = sorted(e["id"] for e in truth["items"] + truth["cancelledInstances"])
    if sorted(e.get("id") for e in items) != expected:
        fail(f"events(full): listed {sorted(e.get('id') for e in items)}, the provider holds {expected}")
    if not any(e.get("status") == "cancelled" and "recurringEventId" in e for e in items):
        fail("events(full): the cancelled instance of the sample series is missing")
    if not any("recurrence" in e for e in items) or not any("date" in e.get("start", {}) for e in items):
        fail("events(full): expected a recurring master and an all-day event among the samples")

    # The client library pages through the same listing (short and empty pages included).
    listed, request = [], service.events().list(calendarId="primary", maxResults=3)
    library_pages = 0
    while request is not None and library_pages < 200:
        response = request.execute()
        library_pages += 1
        listed += [e["id"] for e in response.get("items", [])]
        last = response
        request = service.events().list_next(request, response)
    if sorted(listed) != expected:
        fail(f"google-api-python-client events().list_next listed {sorted(listed)}, expected {expected}")
    if not last.get("nextSyncToken"):
        fail("google-api-python-client: the last page has no nextSyncToken")

    # Provider-side changes, then an incremental sync: a deleted event in the minimal form.
    admin(base, "DELETE", "/admin/google/calendars/primary/events/seed0dentist")
    admin(base, "PUT", "/admin/google/calendars/primary/events/fidcheck0001", {
        "summary": "Fidelity", "start": {"dateTime": "2030-01-01T09:00:00Z", "timeZone": "UTC"},
        "end": {"dateTime": "2030-01-01T10:00:00Z", "timeZone": "UTC"}})
    _, changed, next_token = walk_events(base, auth, schemas, "events(incremental)",
                                         syncToken=sync_token, maxResults=3)
    by_id = {e.get("id"): e for e in changed}
    if sorted(by_id) != ["fidcheck0001", "seed0dentist"]:
        fail(f"events(incremental): got {sorted(by_id)}")
    deleted = by_id.get("seed0dentist", {})
    if sorted(deleted) != ["etag", "id", "kind", "status"] or deleted.get("status") != "cancelled":
        fail(f"events(incremental): the deleted event is {deleted}")
    if not next_token or next_token == sync_token:
        fail("events(incremental): no new nextSyncToken")
    response = service.events().list(calendarId="primary", syncToken=sync_token).execute()
    if sorted(e["id"] for e in response.get("items", [])) != ["fidcheck0001", "seed0dentist"]:
        fail(f"google-api-python-client incremental: {response.get('items')}")

    # Invalidated sync tokens: 410 fullSyncRequired, read by the library's HttpError.
    admin(base, "POST", "/admin/google/calendars/primary/invalidate-sync-tokens")
    try:
        service.events().list(calendarId="primary", syncToken=next_token).execute()
        fail("events(syncToken after invalidation): no error")
    except googleapiclient.errors.HttpError as error:
        details = error.error_details if isinstance(error.error_details, list) else []
        if error.status_code != 410 or error.reason != "Sync token is no longer valid, a full sync is required.":
            fail(f"410: HttpError {error.status_code} {error.reason!r}")
        if not details or details[0].get("reason") != "fullSyncRequired" or details[0].get("domain") != "global":
            fail(f"410: error_details {error.error_details!r}")
    status, _, body = http("GET", f"{base}/google/calendar/v3/calendars/primary/events?"
                           + urllib.parse.urlencode({"syncToken": next_token}), headers=auth)
    parsed = json.loads(body) if status == 410 else {}
    if parsed.get("error", {}).get("status") != "GONE" or parsed["error"].get("code") != 410:
        fail(f"410 body: {status} {body[:300]!r}")
    admin(base, "PUT", "/admin/settings", {"shortPages": False})
    return len(items), len(pages)


# ------------------------------------------------------------------------------------------------
# Push notifications


def check_push(base: str, schemas: dict, service) -> int:
    """A channel opened, notified and stopped through the client library; returns the number of
    notifications the library parsed."""
    parsed = 0
    with WebhookReceiver() as hook:
        channel = googleapiclient.channel.new_webhook_channel(hook.url("/google"), token="fidelity-token")
        response = service.events().watch(calendarId="primary", body=channel.body()).execute()
        validate(response, {"$ref": "Channel"}, schemas, "events.watch")
        for field in ("kind", "id", "resourceId", "resourceUri", "expiration", "token"):
            if field not in response:
                fail(f"events.watch: {field!r} missing from {response}")
        if response.get("kind") != schemas["Channel"]["properties"]["kind"]["default"]:
            fail(f"events.watch: kind {response.get('kind')!r}")
        if response.get("id") != channel.id or response.get("token") != "fidelity-token":
            fail(f"events.watch: the channel's id / token came back as {response}")
        channel.update(response)
        expiration_ms = int(response.get("expiration", "0"))
        week_ms = 604800 * 1000  # params.ttl default, "604800 seconds"
        now_ms = int(datetime.datetime.now(datetime.timezone.utc).timestamp() * 1000)
        if abs(expiration_ms - (now_ms + week_ms)) > 60_000:
            fail(f"events.watch: expiration {expiration_ms} is not the default week from now")

        def read(hit, what: str):
            try:
                note = googleapiclient.channel.notification_from_headers(channel, hit.headers)
            except Exception as error:  # the library refuses the message
                fail(f"{what}: notification_from_headers: {error!r} for {hit.headers}")
                return None
            if note.resource_id != channel.resource_id or note.resource_uri != channel.resource_uri:
                fail(f"{what}: resource {note.resource_id!r} {note.resource_uri!r}, the channel has "
                     f"{channel.resource_id!r} {channel.resource_uri!r}")
            headers = {k.lower(): v for k, v in hit.headers.items()}
            if headers.get("x-goog-channel-token") != "fidelity-token":
                fail(f"{what}: X-Goog-Channel-Token {headers.get('x-goog-channel-token')!r}")
            try:
                expiry = email.utils.parsedate_to_datetime(headers.get("x-goog-channel-expiration", ""))
                if int(expiry.timestamp()) != expiration_ms // 1000:
                    fail(f"{what}: X-Goog-Channel-Expiration {expiry} is not the channel's expiration")
            except (TypeError, ValueError):
                fail(f"{what}: X-Goog-Channel-Expiration {headers.get('x-goog-channel-expiration')!r} is not an RFC 1123 date")
            if hit.body:
                fail(f"{what}: the message has a body {hit.body[:100]!r}")
            return note

        hits = hook.wait("/google", 1)
        note = read(hits[0], "sync message") if hits else None
        if note is None or note.state != "sync" or note.message_number != 1:
            fail(f"sync message: {vars(note) if note else 'none arrived'}")
        else:
            parsed += 1
        admin(base, "PUT", "/admin/google/calendars/primary/events/fidpush0001", {
            "summary": "Pushed", "start": {"dateTime": "2030-02-01T09:00:00Z", "timeZone": "UTC"},
            "end": {"dateTime": "2030-02-01T10:00:00Z", "timeZone": "UTC"}})
        hits = hook.wait("/google", 2)
        note = read(hits[1], "exists message") if len(hits) > 1 else None
        if note is None or note.state != "exists" or note.message_number <= 1:
            fail(f"exists message: {vars(note) if note else 'none arrived'}")
        else:
            parsed += 1

        service.channels().stop(body=channel.body()).execute()
        try:
            service.channels().stop(body=channel.body()).execute()
            fail("channels.stop of a stopped channel: no error")
        except googleapiclient.errors.HttpError as error:
            if error.status_code != 404:
                fail(f"channels.stop of a stopped channel: HttpError {error.status_code} {error.reason!r}")
        admin(base, "DELETE", "/admin/google/calendars/primary/events/fidpush0001")
        if not hook.still("/google", 2):
            fail(f"a stopped channel was notified: {hook.at('/google')[2:]}")
    return parsed


# ------------------------------------------------------------------------------------------------
# OAuth


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def oauth(base: str) -> dict:
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    query = urllib.parse.urlencode({
        "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
        "scope": SCOPE, "state": state, "code_challenge": challenge,
        "code_challenge_method": "S256", "access_type": "offline", "prompt": "consent",
        "login_hint": ACCOUNT,
    })
    status, headers, _ = http("GET", f"{base}/google/o/oauth2/v2/auth?{query}")
    location = headers.get("Location") or headers.get("location")
    if status != 302 or not location:
        raise SystemExit(f"check_google: authorize answered {status} without a redirect")
    target = urllib.parse.urlsplit(location)
    if f"{target.scheme}://{target.netloc}{target.path}" != REDIRECT_URI:
        fail(f"authorize: redirected to {location}, not to the redirect_uri")
    params = urllib.parse.parse_qs(target.query)
    if params.get("state") != [state]:
        fail(f"authorize: state not returned unchanged: {params.get('state')}")
    if "error" in params or "code" not in params:
        raise SystemExit(f"check_google: authorize redirected with {params}")
    code = params["code"][0]
    if "scope" not in params:
        fail("authorize: the redirect carries no scope")

    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "code_verifier": verifier}
    status, headers, body = http("POST", f"{base}/google/token", form=form)
    if status != 200:
        raise SystemExit(f"check_google: token exchange answered {status}: {body!r}")
    token = json.loads(body)
    for field, kind in [("access_token", str), ("expires_in", int), ("refresh_token", str),
                        ("scope", str), ("token_type", str)]:
        if not isinstance(token.get(field), kind):
            fail(f"token: {field} missing or not a {kind.__name__}: {token.get(field)!r}")
    if token.get("token_type") != "Bearer":
        fail(f"token: token_type {token.get('token_type')!r}")
    for field in set(token) - TOKEN_FIELDS:
        fail(f"token: undocumented field {field!r}")
    if "no-store" not in headers.get("Cache-Control", headers.get("cache-control", "")):
        fail("token: the response may be cached (no Cache-Control: no-store)")

    # The code is single-use; a second exchange is invalid_grant.
    status, _, body = http("POST", f"{base}/google/token", form=form)
    if status != 400 or json.loads(body).get("error") != "invalid_grant":
        fail(f"token: a redeemed code answered {status} {body!r}, expected 400 invalid_grant")

    # Refresh: a new access token and no new refresh token (Google does not rotate them).
    status, _, body = http("POST", f"{base}/google/token", form={
        "grant_type": "refresh_token", "refresh_token": token.get("refresh_token", ""),
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    refreshed = json.loads(body) if status == 200 else {}
    if status != 200 or not refreshed.get("access_token"):
        fail(f"refresh: answered {status} {body!r}")
    if "refresh_token" in refreshed:
        fail("refresh: Google does not return a new refresh_token")
    return token


# ------------------------------------------------------------------------------------------------


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    base = sys.argv[1].rstrip("/")
    discovery = load_discovery()
    schemas = discovery["schemas"]
    token = oauth(base)
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    url = f"{base}/google/calendar/v3/users/me/calendarList"

    # Walk every page one entry at a time.
    walked, page_token, pages = [], None, 0
    while True:
        pages += 1
        query = {"maxResults": 1, **({"pageToken": page_token} if page_token else {})}
        status, headers, body = http("GET", f"{url}?{urllib.parse.urlencode(query)}", headers=auth)
        if status != 200:
            fail(f"calendarList page {pages}: {status} {body[:200]!r}")
            break
        if not headers.get("Content-Type", headers.get("content-type", "")).startswith("application/json"):
            fail(f"calendarList page {pages}: content type {headers.get('Content-Type')!r}")
        page = json.loads(body)
        check_page(page, schemas, f"calendarList(page {pages})")
        if len(page.get("items", [])) > 1:
            fail(f"calendarList page {pages}: {len(page['items'])} items for maxResults=1")
        walked += page.get("items", [])
        page_token = page.get("nextPageToken")
        if not page_token or pages > 50:
            sync_token = page.get("nextSyncToken")
            break

    status, _, body = http("GET", url, headers=auth)
    full = json.loads(body) if status == 200 else {}
    check_page(full, schemas, "calendarList(default page)")
    ids = [e.get("id") for e in full.get("items", [])]
    if [e.get("id") for e in walked] != ids:
        fail(f"calendarList: paging one by one gave {[e.get('id') for e in walked]}, one page gave {ids}")
    primaries = [e.get("id") for e in walked if e.get("primary")]
    if primaries != [ACCOUNT]:
        fail(f"calendarList: the primary calendar must be the account e-mail, got {primaries}")
    if len(walked) < 2:
        fail("calendarList: the default account should have several calendars")

    # Incremental sync with the last page's token: nothing changed, so no items.
    status, _, body = http("GET", f"{url}?{urllib.parse.urlencode({'syncToken': sync_token or ''})}", headers=auth)
    if status != 200 or json.loads(body).get("items") != []:
        fail(f"calendarList(syncToken): expected 200 with no items, got {status} {body[:200]!r}")

    # The error shape, read by google-api-python-client's own HttpError.
    status, headers, body = http("GET", url)
    if status != 401:
        fail(f"calendarList without a token: {status}, expected 401")
    error = googleapiclient.errors.HttpError(httplib2.Response({"status": status}), body, uri=url)
    parsed = json.loads(body).get("error", {})
    if error.status_code != 401 or not error.reason or error.reason != parsed.get("message"):
        fail(f"401 body: HttpError read reason {error.reason!r}")
    if parsed.get("status") != "UNAUTHENTICATED" or parsed.get("code") != 401 or not isinstance(error.error_details, list):
        fail(f"401 body: {parsed}")
    for detail in parsed.get("errors", []):
        if not {"message", "domain", "reason"} <= set(detail):
            fail(f"401 body: errors[] entry {detail} lacks message/domain/reason")

    # The client library itself, built from the same discovery document, against the emulator.
    class BearerHttp(httplib2.Http):
        def request(self, uri, method="GET", body=None, headers=None, **kwargs):
            headers = dict(headers or {}, authorization=f"Bearer {token['access_token']}")
            return super().request(uri, method, body=body, headers=headers, **kwargs)

    service = googleapiclient.discovery.build_from_document(
        discovery, http=BearerHttp(proxy_info=None, timeout=10),
        client_options={"api_endpoint": f"{base}/google/calendar/v3/"})
    listed, request = [], service.calendarList().list(maxResults=2)
    while request is not None:
        response = request.execute()
        listed += [e["id"] for e in response.get("items", [])]
        request = service.calendarList().list_next(request, response)
    if listed != ids:
        fail(f"google-api-python-client listed {listed}, expected {ids}")

    event_count, event_pages = check_events(base, token, schemas, service)
    instance_count = check_instances(base, token, schemas, service)
    push_count = check_push(base, schemas, service)

    if errors:
        print(f"check_google: {len(errors)} mismatch(es) with the Calendar v3 discovery document / Google OAuth:",
              file=sys.stderr)
        for message in errors:
            print(f"  - {message}", file=sys.stderr)
        return 1
    print(f"check_google: OK ({len(walked)} calendars over {pages} pages and {event_count} events "
          f"over {event_pages} short pages, plus incremental and 410 answers and {instance_count} "
          f"events.instances of the sample series, match calendar.v3 "
          f"revision {discovery.get('revision')}; google-api-python-client paged them too; its "
          f"channel module opened, read {push_count} push messages of and stopped a watch channel)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
