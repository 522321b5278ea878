#!/usr/bin/env python3
"""Checks the provider emulator's Microsoft side with the official Microsoft Graph Python SDK's models.

    python check_graph.py http://127.0.0.1:PORT

1. Runs the identity platform v2.0 authorization-code flow with PKCE against the emulator by hand
   (authorize, read the 302, redeem the code), then a refresh, checking that the refresh token
   rotates and that the redeemed one is refused with invalid_grant / AADSTS70000.
2. Has msgraph-sdk's `User`, `CalendarCollectionResponse` / `Calendar` and `ODataError` models parse
   `/me`, every page of `/me/calendars` (walked through `@odata.nextLink`) and a 401 body, through
   kiota's `ParseNodeFactoryRegistry` with the response's own Content-Type, exactly as the SDK's
   request adapter does. Every emitted field must be a property of the model (only OData
   annotations may land in `additional_data`), must survive a round trip through kiota's JSON
   writer unchanged (a wrong JSON type or an unknown enum value would be dropped), and the parsed
   objects must carry the values calsync reads (id, name, is_default_calendar, hex_color,
   owner.address, odata_next_link).
3. Events: walks a calendarView delta round page by page (`Prefer: odata.maxpagesize`) and has
   the SDK's delta response model (`DeltaGetResponse` with `Event` values) parse every page the
   same way; checks the deltaLink; makes provider-side changes (a deletion, a move out of the
   window), follows the deltaLink and parses the `@removed` entries; then has `ODataError` parse
   the 410 answer after the emulator's delta tokens are invalidated.
4. Series: walks a master's instances through `@odata.nextLink` (`EventCollectionResponse`), then
   has `Event` parse the master with `cancelledOccurrences` selected and `exceptionOccurrences`
   expanded.
5. Change notifications: creates a subscription to `me/events` with a notification and a
   lifecycle URL on a receiver on 127.0.0.1 (which answers the validation requests as documented),
   has `Subscription` parse the create, get and renew answers and `SubscriptionCollectionResponse`
   the list; checks the validation requests, the change notifications of a provider-side create,
   update and delete and a `missed` lifecycle notification against the documented
   changeNotification properties; deletes the subscription and has `ODataError` parse the 404.

Only the emulator is contacted. Exits non-zero with one line per mismatch.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request

from kiota_abstractions.serialization import ParseNodeFactoryRegistry
from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory
from kiota_serialization_json.json_serialization_writer import JsonSerializationWriter
from msgraph.generated.models.calendar import Calendar
from msgraph.generated.models.calendar_collection_response import CalendarCollectionResponse
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.user import User
from msgraph.generated.models.event import Event
from msgraph.generated.models.event_collection_response import EventCollectionResponse
from msgraph.generated.models.subscription import Subscription
from msgraph.generated.models.subscription_collection_response import SubscriptionCollectionResponse
from msgraph.generated.users.item.calendar_view.delta.delta_get_response import DeltaGetResponse
from kiota_abstractions.date_utils import datetime_from_iso_format_compat
import datetime
import re

from webhook_receiver import WebhookReceiver

CLIENT_ID = "00000000-0000-0000-0000-00000000f1de"
CLIENT_SECRET = "fidelity-secret"
REDIRECT_URI = "http://127.0.0.1:1/oauth/callback"  # never contacted: the 302 is read, not followed
SCOPE = "openid offline_access User.Read Calendars.Read"
ACCOUNT = "bob@outlook.test"
# Documented token response fields (identity platform v2.0 auth-code flow).
TOKEN_FIELDS = {"token_type", "scope", "expires_in", "ext_expires_in", "access_token",
                "refresh_token", "id_token", "refresh_token_expires_in"}
ERROR_FIELDS = {"error", "error_description", "error_codes", "timestamp", "trace_id",
                "correlation_id", "error_uri", "suberror", "claims"}

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
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


# ------------------------------------------------------------------------------------------------
# Parsing with the SDK's models


REGISTRY = ParseNodeFactoryRegistry()
REGISTRY.CONTENT_TYPE_ASSOCIATED_FACTORIES["application/json"] = JsonParseNodeFactory()


def parse(model, headers: dict, body: bytes, what: str, extra_ok: tuple = ()):
    """Parses `body` as `model` the way the SDK's request adapter does; checks the round trip.
    `extra_ok`: annotations besides `@odata.*` that may land in additional_data (`@removed`)."""
    content_type = headers.get("content-type", "")
    try:
        node = REGISTRY.get_root_parse_node(content_type, body)
    except Exception as error:  # the SDK would fail the same way
        fail(f"{what}: the SDK cannot parse Content-Type {content_type!r}: {error}")
        return None
    parsed = node.get_object_value(model)
    raw = json.loads(body)
    check_additional_data(parsed, what, extra_ok)
    writer = JsonSerializationWriter()
    writer.write_object_value(None, parsed)
    round_trip = json.loads(writer.get_serialized_content())
    compare(raw, round_trip, what)
    return parsed


def check_additional_data(obj, path: str, extra_ok: tuple = ()) -> None:
    """Fields a model does not declare go to additional_data: only OData annotations may."""
    extra = getattr(obj, "additional_data", None) or {}
    for key in extra:
        if not key.startswith("@odata.") and key not in extra_ok:
            fail(f"{path}.{key}: not a property of {type(obj).__name__} in msgraph-sdk")
    for name, value in vars(obj).items():
        if name == "additional_data":
            continue
        if isinstance(value, list):
            for i, item in enumerate(value):
                if hasattr(item, "get_field_deserializers"):
                    check_additional_data(item, f"{path}.{name}[{i}]", extra_ok)
        elif hasattr(value, "get_field_deserializers"):
            check_additional_data(value, f"{path}.{name}", extra_ok)


def compare(raw, round_trip, path: str) -> None:
    """Every emitted value must come back unchanged from the SDK model."""
    if isinstance(raw, dict):
        if not isinstance(round_trip, dict):
            return fail(f"{path}: parsed as {round_trip!r}")
        for key, value in raw.items():
            if value is None:
                continue  # Graph sends null for unset nullable properties; the writer omits them
            if key not in round_trip:
                fail(f"{path}.{key}: {json.dumps(value)} was dropped by the SDK model (wrong type or unknown value)")
            else:
                compare(value, round_trip[key], f"{path}.{key}")
    elif isinstance(raw, list):
        if not isinstance(round_trip, list) or len(raw) != len(round_trip):
            return fail(f"{path}: {json.dumps(raw)} came back as {json.dumps(round_trip)}")
        for i, (a, b) in enumerate(zip(raw, round_trip)):
            compare(a, b, f"{path}[{i}]")
    elif raw != round_trip and not same_instant(raw, round_trip):
        fail(f"{path}: {json.dumps(raw)} came back as {json.dumps(round_trip)}")


def same_instant(a, b) -> bool:
    """Edm.DateTimeOffset values: Graph writes 7 fractional digits and Z, Python writes +00:00."""
    if not (isinstance(a, str) and isinstance(b, str)):
        return False
    try:
        return datetime_from_iso_format_compat(a) == datetime_from_iso_format_compat(b)
    except ValueError:
        return False


# ------------------------------------------------------------------------------------------------
# OAuth


def oauth(base: str) -> dict:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(16)
    authority = f"{base}/microsoft/common/oauth2/v2.0"
    query = urllib.parse.urlencode({
        "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
        "response_mode": "query", "scope": SCOPE, "state": state, "code_challenge": challenge,
        "code_challenge_method": "S256", "login_hint": ACCOUNT,
    })
    status, headers, _ = http("GET", f"{authority}/authorize?{query}")
    location = headers.get("location")
    if status != 302 or not location:
        raise SystemExit(f"check_graph: authorize answered {status} without a redirect")
    params = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    if params.get("state") != [state]:
        fail(f"authorize: state not returned unchanged: {params.get('state')}")
    if "code" not in params:
        raise SystemExit(f"check_graph: authorize redirected with {params}")

    status, headers, body = http("POST", f"{authority}/token", form={
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "grant_type": "authorization_code",
        "code": params["code"][0], "redirect_uri": REDIRECT_URI, "code_verifier": verifier,
        "scope": SCOPE})
    if status != 200:
        raise SystemExit(f"check_graph: code redemption answered {status}: {body!r}")
    token = check_token(json.loads(body), "token(authorization_code)")

    refresh_form = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                    "grant_type": "refresh_token", "refresh_token": token.get("refresh_token", ""),
                    "scope": SCOPE}
    status, _, body = http("POST", f"{authority}/token", form=refresh_form)
    if status != 200:
        fail(f"token(refresh_token): {status} {body!r}")
        return token
    refreshed = check_token(json.loads(body), "token(refresh_token)")
    if refreshed.get("refresh_token") in (None, token.get("refresh_token")):
        fail("token(refresh_token): the refresh token did not rotate")
    status, _, body = http("POST", f"{authority}/token", form=refresh_form)
    error = json.loads(body) if body else {}
    if status != 400 or error.get("error") != "invalid_grant" or 70000 not in error.get("error_codes", []):
        fail(f"token(redeemed refresh_token): {status} {body!r}, expected 400 invalid_grant AADSTS70000")
    for field in set(error) - ERROR_FIELDS:
        fail(f"token error: undocumented field {field!r}")
    if not str(error.get("error_description", "")).startswith("AADSTS70000:"):
        fail(f"token error: error_description {error.get('error_description')!r}")
    return refreshed


def check_token(token: dict, what: str) -> dict:
    for field, kind in [("token_type", str), ("scope", str), ("expires_in", int),
                        ("ext_expires_in", int), ("access_token", str), ("refresh_token", str)]:
        if not isinstance(token.get(field), kind):
            fail(f"{what}: {field} missing or not a {kind.__name__}: {token.get(field)!r}")
    if token.get("token_type") != "Bearer":
        fail(f"{what}: token_type {token.get('token_type')!r}")
    for field in set(token) - TOKEN_FIELDS:
        fail(f"{what}: undocumented field {field!r}")
    return token


# ------------------------------------------------------------------------------------------------
# Events: calendarView delta

GRAPH_LOCAL = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}")
WINDOWS_ZONES = {"GMT Standard Time", "Pacific Standard Time", "W. Europe Standard Time", "UTC"}


def admin(base: str, method: str, path: str, body=None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{base}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with OPENER.open(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


def delta_round(url: str, auth: dict, what: str, page_size: int) -> tuple[list, list, str]:
    """Every page of one delta round, parsed by the SDK; (raw items, parsed events, deltaLink)."""
    raw_items, events, pages = [], [], 0
    headers = {**auth, "Prefer": f"odata.maxpagesize={page_size}"}
    while url and pages < 100:
        pages += 1
        status, response_headers, body = http("GET", url, headers=headers)
        if status != 200:
            fail(f"{what} page {pages}: {status} {body[:300]!r}")
            return raw_items, events, ""
        raw = json.loads(body)
        page = parse(DeltaGetResponse, response_headers, body, f"{what}(page {pages})", ("@removed",))
        if page is None:
            return raw_items, events, ""
        if raw.get("@odata.context") != "https://graph.microsoft.com/v1.0/$metadata#Collection(event)":
            fail(f"{what} page {pages}: @odata.context {raw.get('@odata.context')!r}")
        if len(page.value or []) > page_size:
            fail(f"{what} page {pages}: {len(page.value)} events for odata.maxpagesize={page_size}")
        if (page.odata_next_link is None) == (page.odata_delta_link is None):
            fail(f"{what} page {pages}: exactly one of @odata.nextLink / @odata.deltaLink expected")
        if page.odata_next_link != raw.get("@odata.nextLink") or page.odata_delta_link != raw.get("@odata.deltaLink"):
            fail(f"{what} page {pages}: the SDK read other links than the body has")
        raw_items += raw.get("value", [])
        events += page.value or []
        if page.odata_next_link:
            if "$skiptoken=" not in page.odata_next_link or "startDateTime" in page.odata_next_link:
                fail(f"{what} page {pages}: nextLink {page.odata_next_link!r}")
            url = page.odata_next_link
        else:
            if "$deltatoken=" not in (page.odata_delta_link or ""):
                fail(f"{what} page {pages}: deltaLink {page.odata_delta_link!r}")
            return raw_items, events, page.odata_delta_link
    fail(f"{what}: paging did not end")
    return raw_items, events, ""


def check_event(event, raw: dict, where: str) -> None:
    if not isinstance(event, Event):
        return fail(f"{where}: parsed as {type(event).__name__}")
    if event.id != raw.get("id") or not event.change_key or not event.i_cal_u_id:
        fail(f"{where}: Event.id / change_key / i_cal_u_id {event.id!r} {event.change_key!r}")
    if (event.additional_data or {}).get("@odata.etag") != f'W/"{event.change_key}"':
        fail(f"{where}: @odata.etag {(event.additional_data or {}).get('@odata.etag')!r}")
    if event.type is None or event.type.value not in ("singleInstance", "occurrence", "exception"):
        fail(f"{where}: calendarView type {getattr(event.type, 'value', None)!r}")
    elif event.type.value != "singleInstance" and not event.series_master_id:
        fail(f"{where}: an {event.type.value} without seriesMasterId")
    if event.type is not None and event.type.value in ("occurrence", "exception") and event.original_start is None:
        fail(f"{where}: an {event.type.value} without originalStart")
    for name in ("start", "end"):
        t = getattr(event, name)
        if t is None or t.time_zone != "UTC" or not GRAPH_LOCAL.fullmatch(t.date_time or ""):
            fail(f"{where}.{name}: {t!r} is not a UTC dateTimeTimeZone with 7 fractional digits")
    if event.is_all_day and not (event.start.date_time or "").endswith("T00:00:00.0000000"):
        fail(f"{where}: an all-day event that does not start at midnight")
    if event.original_start_time_zone not in WINDOWS_ZONES:
        fail(f"{where}: originalStartTimeZone {event.original_start_time_zone!r}")
    if event.created_date_time is None or event.last_modified_date_time is None:
        fail(f"{where}: created/lastModifiedDateTime missing")
    if event.recurrence is not None:
        fail(f"{where}: an instance carries a recurrence")


def check_events(base: str, token: dict) -> tuple[int, int]:
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    now = datetime.datetime.now(datetime.timezone.utc)
    start = (now - datetime.timedelta(days=14)).strftime("%Y-%m-%dT00:00:00Z")
    end = (now + datetime.timedelta(days=14)).strftime("%Y-%m-%dT00:00:00Z")
    first = f"{base}/microsoft/v1.0/me/calendarView/delta?" + urllib.parse.urlencode(
        {"startDateTime": start, "endDateTime": end})

    status, headers, body = http("GET", f"{base}/microsoft/v1.0/me/calendarView/delta", headers=auth)
    error = parse(ODataError, headers, body, "delta without a window") if status == 400 else None
    if error is None or error.error.code != "ErrorInvalidParameter":
        fail(f"delta without a window: {status} {body[:200]!r}")

    raw_items, events, delta_link = delta_round(first, auth, "delta(first)", 2)
    for i, (event, raw) in enumerate(zip(events, raw_items)):
        check_event(event, raw, f"delta(first).value[{i}]")
    truth = admin(base, "GET", "/admin/microsoft/calendars/default/events?"
                  + urllib.parse.urlencode({"startDateTime": start, "endDateTime": end}))
    if sorted(e.id for e in events) != sorted(e["id"] for e in truth["value"]):
        fail(f"delta(first): {sorted(e.id for e in events)} is not the provider's {sorted(e['id'] for e in truth['value'])}")
    kinds = {e.type.value for e in events if e.type}
    if not {"singleInstance", "occurrence"} <= kinds:
        fail(f"delta(first): expected single instances and occurrences, got {kinds}")
    teams = [e for e in events if e.online_meeting and e.online_meeting.join_url]
    if not teams or not teams[0].is_online_meeting:
        fail("delta(first): the sample Teams meeting has no onlineMeeting.joinUrl")
    if not any(e.is_all_day for e in events):
        fail("delta(first): the sample all-day event is missing")

    # Provider-side changes: one event deleted, one moved out of the window.
    singles = [e for e in truth["value"] if e["type"] == "singleInstance"]
    deleted, moved = singles[0], singles[1]
    admin(base, "DELETE", "/admin/microsoft/calendars/default/events/" + urllib.parse.quote(deleted["id"], safe=""))
    admin(base, "PUT", "/admin/microsoft/calendars/default/events/" + urllib.parse.quote(moved["id"], safe=""), {
        "subject": moved["subject"], "start": {"dateTime": "2040-01-01T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2040-01-01T10:00:00", "timeZone": "UTC"}})
    raw_changes, changes, next_link = delta_round(delta_link, auth, "delta(changes)", 2)
    removed = sorted(e.id for e in changes if (e.additional_data or {}).get("@removed") == {"reason": "deleted"})
    if removed != sorted([deleted["id"], moved["id"]]):
        fail(f"delta(changes): @removed for {removed}, expected the deleted and the moved event")
    for event, raw in zip(changes, raw_changes):
        if "@removed" in raw and (event.odata_type != "#microsoft.graph.event" or set(raw) != {"@odata.type", "id", "@removed"}):
            fail(f"delta(changes): removed entry {raw}")

    # Invalidated delta tokens: 410 read by ODataError.
    admin(base, "POST", "/admin/microsoft/calendars/default/invalidate-delta-tokens")
    status, headers, body = http("GET", next_link, headers=auth)
    if status != 410:
        fail(f"deltaLink after invalidation: {status}, expected 410")
    else:
        error = parse(ODataError, headers, body, "410 body")
        main_error = getattr(error, "error", None)
        if main_error is None or main_error.code != "syncStateNotFound" or not main_error.message:
            fail(f"410 body: ODataError.error {main_error!r}")
    return len(events), len(changes)


def check_series(base: str, token: dict) -> int:
    """The sample weekly series: its instances (every page parsed as `EventCollectionResponse`,
    walked through `@odata.nextLink`), then the master with `cancelledOccurrences` selected and
    `exceptionOccurrences` expanded, parsed as `Event`."""
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    graph = f"{base}/microsoft/v1.0"
    truth = admin(base, "GET", "/admin/microsoft/calendars/default/events")
    master = truth["seriesMasters"][0]
    master_id = master["id"]
    quoted = urllib.parse.quote(master_id, safe="")
    # One occurrence becomes an exception, so that the expansion has something to show.
    occurrence = next(e for e in truth["value"] if e.get("seriesMasterId") == master_id)
    admin(base, "PUT", f"/admin/microsoft/calendars/default/events/{quoted}/occurrences/"
          + urllib.parse.quote(occurrence["originalStart"], safe=""), {"subject": "Planning (moved room)"})

    now = datetime.datetime.now(datetime.timezone.utc)
    window = {"startDateTime": (now - datetime.timedelta(days=21)).strftime("%Y-%m-%dT00:00:00Z"),
              "endDateTime": (now + datetime.timedelta(days=60)).strftime("%Y-%m-%dT00:00:00Z")}
    url = f"{graph}/me/events/{quoted}/instances?" + urllib.parse.urlencode(window)
    status, headers, body = http("GET", f"{graph}/me/events/{quoted}/instances", headers=auth)
    error = parse(ODataError, headers, body, "instances without a window") if status == 400 else None
    if error is None or error.error.code != "ErrorInvalidParameter":
        fail(f"instances without a window: {status} {body[:200]!r}")
    instances, pages = [], 0
    while url and pages < 50:
        pages += 1
        status, headers, body = http("GET", url, headers={**auth, "Prefer": "odata.maxpagesize=3"})
        if status != 200:
            fail(f"instances page {pages}: {status} {body[:300]!r}")
            break
        raw = json.loads(body)
        page = parse(EventCollectionResponse, headers, body, f"instances(page {pages})")
        if page is None:
            break
        if page.odata_next_link != raw.get("@odata.nextLink"):
            fail(f"instances page {pages}: the SDK read another nextLink than the body has")
        for i, (event, raw_event) in enumerate(zip(page.value or [], raw.get("value", []))):
            check_event(event, raw_event, f"instances(page {pages}).value[{i}]")
            if event.series_master_id != master_id or event.type.value not in ("occurrence", "exception"):
                fail(f"instances(page {pages}).value[{i}]: not an instance of the series: {raw_event.get('type')}")
        instances += page.value or []
        url = page.odata_next_link
    if pages < 2:
        fail("instances: expected several pages with odata.maxpagesize=3")
    if not any(e.type and e.type.value == "exception" for e in instances):
        fail("instances: the exception is missing")
    expected = sorted(e["id"] for e in admin(base, "GET", "/admin/microsoft/calendars/default/events?"
                                                  + urllib.parse.urlencode(window))["value"]
                      if e.get("seriesMasterId") == master_id)
    if sorted(e.id for e in instances) != expected:
        fail(f"instances: {len(instances)} listed, the provider holds {len(expected)} in the window")

    query = urllib.parse.urlencode({"$select": "subject,start,cancelledOccurrences,exceptionOccurrences",
                                    "$expand": "exceptionOccurrences"})
    status, headers, body = http("GET", f"{graph}/me/events/{quoted}?{query}", headers=auth)
    detail = parse(Event, headers, body, "series master ($select, $expand)") if status == 200 else None
    if detail is None:
        fail(f"series master ($select, $expand): {status} {body[:300]!r}")
        return len(instances)
    cancelled = detail.cancelled_occurrences or []
    if len(cancelled) != 1 or not cancelled[0].startswith(f"OID.{master_id}."):
        fail(f"series master: cancelled_occurrences {cancelled!r}, expected this week's cancelled occurrence")
    exceptions = detail.exception_occurrences or []
    if [e.subject for e in exceptions] != ["Planning (moved room)"] or exceptions[0].id != occurrence["id"]:
        fail(f"series master: exception_occurrences {[(e.id, e.subject) for e in exceptions]!r}")
    if detail.body is not None or detail.attendees is not None:
        fail("series master: $select should leave out what it does not name")
    status, _, body = http("GET", f"{graph}/me/events/{quoted}", headers=auth)
    plain = json.loads(body) if status == 200 else {}
    if "cancelledOccurrences" in plain or "exceptionOccurrences" in plain:
        fail("series master: cancelledOccurrences / exceptionOccurrences without $select / $expand")
    return len(instances)


# ------------------------------------------------------------------------------------------------
# Change notifications

# changeNotification resource type (v1.0): every property, and the required ones.
CHANGE_NOTIFICATION_FIELDS = {"changeType", "clientState", "encryptedContent", "id", "lifecycleEvent",
                              "resource", "resourceData", "subscriptionExpirationDateTime",
                              "subscriptionId", "tenantId"}
CHANGE_NOTIFICATION_REQUIRED = {"changeType", "resource", "subscriptionExpirationDateTime",
                                "subscriptionId", "tenantId"}
# The lifecycle notification structure of "Reduce missing subscriptions and change notifications".
LIFECYCLE_FIELDS = {"subscriptionId", "subscriptionExpirationDateTime", "tenantId", "clientState",
                    "lifecycleEvent"}
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def http_json(method: str, url: str, body, headers: dict):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method=method,
                                     headers={**headers, "Content-Type": "application/json"})
    try:
        with OPENER.open(request, timeout=30) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def check_notification_collection(hit, what: str, subscription_id: str, lifecycle: bool) -> list:
    """The documented changeNotificationCollection shape; returns the notifications."""
    if not hit.headers.get("content-type", "").startswith("application/json"):
        fail(f"{what}: Content-Type {hit.headers.get('content-type')!r}")
    try:
        payload = json.loads(hit.body)
    except ValueError:
        fail(f"{what}: not JSON: {hit.body[:200]!r}")
        return []
    if set(payload) != {"value"} or not isinstance(payload.get("value"), list) or not payload["value"]:
        fail(f"{what}: expected {{'value': [...]}}, got {payload}")
        return []
    for i, n in enumerate(payload["value"]):
        where = f"{what}.value[{i}]"
        allowed = LIFECYCLE_FIELDS if lifecycle else CHANGE_NOTIFICATION_FIELDS
        required = LIFECYCLE_FIELDS - {"clientState"} if lifecycle else CHANGE_NOTIFICATION_REQUIRED
        for field in set(n) - allowed:
            fail(f"{where}.{field}: not a documented property")
        for field in required - set(n):
            fail(f"{where}: required property {field!r} missing")
        if n.get("subscriptionId") != subscription_id:
            fail(f"{where}.subscriptionId: {n.get('subscriptionId')!r}")
        for field in ("subscriptionId", "tenantId"):
            if not GUID.fullmatch(str(n.get(field, ""))):
                fail(f"{where}.{field}: {n.get(field)!r} is not a Guid")
        try:
            datetime_from_iso_format_compat(n.get("subscriptionExpirationDateTime", ""))
        except (TypeError, ValueError):
            fail(f"{where}.subscriptionExpirationDateTime: {n.get('subscriptionExpirationDateTime')!r}")
        if n.get("clientState") != "fidelity-state":
            fail(f"{where}.clientState: {n.get('clientState')!r}")
        if lifecycle:
            if n.get("lifecycleEvent") not in ("missed", "subscriptionRemoved", "reauthorizationRequired"):
                fail(f"{where}.lifecycleEvent: {n.get('lifecycleEvent')!r}")
            continue
        if n.get("changeType") not in ("created", "updated", "deleted"):
            fail(f"{where}.changeType: {n.get('changeType')!r}")
        data = n.get("resourceData", {})
        if (data.get("@odata.type") != "#Microsoft.Graph.Event" or data.get("@odata.id") != n.get("resource")
                or not str(data.get("@odata.etag", "")).startswith('W/"') or not data.get("id")
                or not str(n.get("resource", "")).endswith(f"/Events/{data.get('id')}")):
            fail(f"{where}: resource / resourceData {n.get('resource')!r} {data}")
    return payload["value"]


def check_subscriptions(base: str, token: dict) -> int:
    """A subscription's life against msgraph-sdk's models; returns the notifications checked."""
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    graph = f"{base}/microsoft/v1.0"
    checked = 0
    with WebhookReceiver() as hook:
        expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2)
        status, headers, body = http_json("POST", f"{graph}/subscriptions", {
            "changeType": "created,updated,deleted",
            "notificationUrl": hook.url("/notify"),
            "lifecycleNotificationUrl": hook.url("/lifecycle"),
            "resource": "me/events",
            "expirationDateTime": expiry.isoformat(),
            "clientState": "fidelity-state",
        }, auth)
        if status != 201:
            fail(f"POST /subscriptions: {status} {body[:300]!r}")
            return 0
        sub = parse(Subscription, headers, body, "POST /subscriptions")
        if sub is None:
            return 0
        context = (sub.additional_data or {}).get("@odata.context")
        if context != "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity":
            fail(f"POST /subscriptions: @odata.context {context!r}")
        if not GUID.fullmatch(sub.id or ""):
            fail(f"POST /subscriptions: id {sub.id!r} is not a GUID")
        if (sub.change_type, sub.resource, sub.client_state, sub.application_id) != (
                "created,updated,deleted", "me/events", "fidelity-state", CLIENT_ID):
            fail(f"POST /subscriptions: {sub.change_type!r} {sub.resource!r} {sub.client_state!r} {sub.application_id!r}")
        if sub.include_resource_data is not False or sub.latest_supported_tls_version != "v1_2":
            fail(f"POST /subscriptions: includeResourceData {sub.include_resource_data!r}, "
                 f"latestSupportedTlsVersion {sub.latest_supported_tls_version!r}")
        if sub.expiration_date_time is None or abs((sub.expiration_date_time - expiry).total_seconds()) > 1:
            fail(f"POST /subscriptions: expirationDateTime {sub.expiration_date_time} for {expiry}")
        for path in ("/notify", "/lifecycle"):
            hits = hook.at(path)
            if len(hits) != 1 or "validationToken" not in hits[0].query:
                fail(f"validation of {path}: {hits}")
            elif not hits[0].headers.get("content-type", "").startswith("text/plain") or hits[0].body:
                fail(f"validation of {path}: Content-Type {hits[0].headers.get('content-type')!r}, body {hits[0].body!r}")

        one = f"{graph}/subscriptions/{sub.id}"
        status, headers, body = http("GET", one, headers=auth)
        got = parse(Subscription, headers, body, "GET /subscriptions/{id}") if status == 200 else None
        if got is None or got.id != sub.id:
            fail(f"GET /subscriptions/{{id}}: {status} {body[:200]!r}")
        status, headers, body = http("GET", f"{graph}/subscriptions", headers=auth)
        listed = parse(SubscriptionCollectionResponse, headers, body, "GET /subscriptions") if status == 200 else None
        if listed is None or [s.id for s in listed.value or []] != [sub.id]:
            fail(f"GET /subscriptions: {status} {body[:200]!r}")
        renewal = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=10_000)
        status, headers, body = http_json("PATCH", one, {"expirationDateTime": renewal.isoformat()}, auth)
        renewed = parse(Subscription, headers, body, "PATCH /subscriptions/{id}") if status == 200 else None
        if renewed is None or abs((renewed.expiration_date_time - renewal).total_seconds()) > 1:
            fail(f"PATCH /subscriptions/{{id}}: {status} {body[:200]!r}")
        status, headers, body = http_json("PATCH", one, {"expirationDateTime": (
            renewal + datetime.timedelta(minutes=100)).isoformat()}, auth)
        if status != 400:
            fail(f"PATCH beyond 10,080 minutes: {status} {body[:200]!r}")

        # Provider-side changes: created, updated, deleted.
        path = "/admin/microsoft/calendars/default/events/AAMkAGIfidpushAAA="
        event = {"subject": "Fidelity", "start": {"dateTime": "2030-02-01T09:00:00", "timeZone": "UTC"},
                 "end": {"dateTime": "2030-02-01T10:00:00", "timeZone": "UTC"}}
        admin(base, "PUT", path, event)
        admin(base, "PUT", path, {**event, "subject": "Fidelity 2"})
        admin(base, "DELETE", path)
        hits = hook.wait("/notify", 4)
        kinds = []
        for i, hit in enumerate(hits[1:]):
            for n in check_notification_collection(hit, f"change notification {i + 1}", sub.id, False):
                kinds.append(n.get("changeType"))
                checked += 1
        if kinds != ["created", "updated", "deleted"]:
            fail(f"change notifications: {kinds}, expected created, updated, deleted")

        admin(base, "POST", f"/admin/microsoft/subscriptions/{sub.id}/lifecycle", {"event": "missed"})
        hits = hook.wait("/lifecycle", 2)
        if len(hits) < 2:
            fail("lifecycle notification: none arrived")
        else:
            checked += len(check_notification_collection(hits[1], "lifecycle notification", sub.id, True))

        status, _, body = http("DELETE", one, headers=auth)
        if status != 204:
            fail(f"DELETE /subscriptions/{{id}}: {status} {body[:200]!r}")
        status, headers, body = http("GET", one, headers=auth)
        if status != 404:
            fail(f"GET of a deleted subscription: {status}")
        else:
            error = parse(ODataError, headers, body, "404 body")
            if getattr(getattr(error, "error", None), "code", None) != "ResourceNotFound":
                fail(f"404 body: {body[:200]!r}")
        admin(base, "PUT", path, event)
        if not hook.still("/notify", 4):
            fail("a deleted subscription was notified")
    return checked


# ------------------------------------------------------------------------------------------------


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    base = sys.argv[1].rstrip("/")
    token = oauth(base)
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    graph = f"{base}/microsoft/v1.0"

    status, headers, body = http("GET", f"{graph}/me", headers=auth)
    if status != 200:
        raise SystemExit(f"check_graph: /me answered {status}: {body!r}")
    raw_me = json.loads(body)
    me = parse(User, headers, body, "/me")
    if me is not None:
        if not me.id or me.id != raw_me.get("id"):
            fail(f"/me: User.id {me.id!r}")
        if me.mail != ACCOUNT or me.user_principal_name != ACCOUNT:
            fail(f"/me: User.mail {me.mail!r}, user_principal_name {me.user_principal_name!r}")
        if not me.display_name:
            fail("/me: User.display_name is empty")
        if (me.additional_data or {}).get("@odata.context") != "https://graph.microsoft.com/v1.0/$metadata#users/$entity":
            fail(f"/me: @odata.context {(me.additional_data or {}).get('@odata.context')!r}")

    # Walk /me/calendars one calendar per page through @odata.nextLink.
    walked, url, pages = [], f"{graph}/me/calendars", 0
    prefer = {**auth, "Prefer": "odata.maxpagesize=1"}
    while url and pages < 50:
        pages += 1
        status, headers, body = http("GET", url, headers=prefer)
        if status != 200:
            fail(f"/me/calendars page {pages}: {status} {body[:200]!r}")
            break
        raw = json.loads(body)
        page = parse(CalendarCollectionResponse, headers, body, f"/me/calendars(page {pages})")
        if page is None:
            break
        if page.odata_next_link != raw.get("@odata.nextLink"):
            fail(f"/me/calendars page {pages}: odata_next_link {page.odata_next_link!r}")
        if len(page.value or []) > 1:
            fail(f"/me/calendars page {pages}: {len(page.value)} calendars for odata.maxpagesize=1")
        if headers.get("preference-applied") != "odata.maxpagesize=1":
            fail(f"/me/calendars page {pages}: Preference-Applied {headers.get('preference-applied')!r}")
        for i, (calendar, raw_calendar) in enumerate(zip(page.value or [], raw.get("value", []))):
            where = f"/me/calendars(page {pages}).value[{i}]"
            if not isinstance(calendar, Calendar):
                fail(f"{where}: parsed as {type(calendar).__name__}")
                continue
            for attr, key in [("id", "id"), ("name", "name"), ("is_default_calendar", "isDefaultCalendar"),
                              ("hex_color", "hexColor")]:
                if getattr(calendar, attr) is None or getattr(calendar, attr) != raw_calendar.get(key):
                    fail(f"{where}: Calendar.{attr} is {getattr(calendar, attr)!r}, the body has {raw_calendar.get(key)!r}")
            if calendar.owner is None or calendar.owner.address != ACCOUNT:
                fail(f"{where}: Calendar.owner.address {getattr(calendar.owner, 'address', None)!r}")
            if calendar.color is None:
                fail(f"{where}: Calendar.color {raw_calendar.get('color')!r} is not a CalendarColor")
            walked.append(calendar)
        url = page.odata_next_link
        if url:
            parts = urllib.parse.urlsplit(url)
            if not url.startswith(f"{graph}/me/calendars?") or "$skiptoken" not in urllib.parse.parse_qs(parts.query):
                fail(f"/me/calendars page {pages}: nextLink {url!r} is not an absolute URL with a $skiptoken")
    if pages < 2:
        fail("/me/calendars: expected several pages with odata.maxpagesize=1")
    defaults = [c.name for c in walked if c.is_default_calendar]
    if len(defaults) != 1:
        fail(f"/me/calendars: exactly one default calendar expected, got {defaults}")

    # $top paging keeps $top in the nextLink; the default page size holds everything.
    status, headers, body = http("GET", f"{graph}/me/calendars?$top=1", headers=auth)
    page = parse(CalendarCollectionResponse, headers, body, "/me/calendars?$top=1") if status == 200 else None
    if page is None or not page.odata_next_link or "$top=1" not in page.odata_next_link:
        fail(f"/me/calendars?$top=1: nextLink {getattr(page, 'odata_next_link', None)!r} should keep $top")
    status, headers, body = http("GET", f"{graph}/me/calendars", headers=auth)
    page = parse(CalendarCollectionResponse, headers, body, "/me/calendars") if status == 200 else None
    if page is None or [c.id for c in page.value or []] != [c.id for c in walked] or page.odata_next_link:
        fail("/me/calendars: the default page differs from the walked pages")

    # A 401 parsed by the SDK's ODataError model.
    status, headers, body = http("GET", f"{graph}/me/calendars", headers={"Authorization": "Bearer not-a-token"})
    if status != 401:
        fail(f"/me/calendars with a bad token: {status}, expected 401")
    else:
        error = parse(ODataError, headers, body, "401 body")
        main_error = getattr(error, "error", None)
        if main_error is None or main_error.code != "InvalidAuthenticationToken" or not main_error.message:
            fail(f"401 body: ODataError.error {main_error!r}")
        elif main_error.inner_error is None or not main_error.inner_error.request_id or main_error.inner_error.date is None:
            fail(f"401 body: innerError {main_error.inner_error!r}")

    event_count, change_count = check_events(base, token)
    instance_count = check_series(base, token)
    notification_count = check_subscriptions(base, token)

    if errors:
        print(f"check_graph: {len(errors)} mismatch(es) with msgraph-sdk's models / the identity platform:",
              file=sys.stderr)
        for message in errors:
            print(f"  - {message}", file=sys.stderr)
        return 1
    print(f"check_graph: OK (/me, {len(walked)} calendars over {pages} pages, a calendarView delta "
          f"round of {event_count} events and one of {change_count} changes with @removed entries "
          f"and {instance_count} series instances plus the master's cancelledOccurrences / "
          f"exceptionOccurrences parse losslessly into msgraph-sdk models; 410 parses as ODataError; "
          f"refresh tokens rotate; a subscription's create, get, list and renew answers parse as "
          f"Subscription and {notification_count} notifications have the documented shape)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
