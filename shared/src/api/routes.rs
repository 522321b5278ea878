//! The route table: the one place a route is declared. Dispatch, the OpenAPI document and the
//! template.yaml check all read it.

use http::Method;

/// The Lambda function that serves a route; each has its own least-privilege policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteGroup {
    Accounts,
    Calendars,
    Events,
    Connections,
    OAuthCallback,
    Changes,
    Push,
}

impl RouteGroup {
    /// The function's binary name (template.yaml `BuildProperties.Binary`).
    pub fn binary(self) -> &'static str {
        match self {
            Self::Accounts => "accounts-api",
            Self::Calendars => "calendars-api",
            Self::Events => "events-api",
            Self::Connections => "connections-api",
            Self::OAuthCallback => "oauth-callback",
            Self::Changes => "changes-api",
            Self::Push => "push-receiver",
        }
    }

    pub fn tag(self) -> &'static str {
        match self {
            Self::Accounts => "accounts",
            Self::Calendars => "calendars",
            Self::Events => "events",
            Self::Connections | Self::OAuthCallback => "connections",
            Self::Changes => "changes",
            Self::Push => "push",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Register,
    Login,
    ChangePassword,
    RequestReset,
    ConfirmReset,
    DeleteAccount,
    ExportData,
    Logout,
    Me,
    AuditLog,
    OpenApi,
    ListCalendars,
    UpdateCalendar,
    DeleteCalendar,
    ListEvents,
    CreateEvent,
    GetEvent,
    UpdateEvent,
    DeleteEvent,
    SyncCalendar,
    EventInstances,
    Conflicts,
    FreeBusy,
    CreateFeed,
    DeleteFeed,
    ReadFeed,
    Availability,
    StartConnection,
    ConnectApple,
    ListConnections,
    Disconnect,
    ListFeeds,
    OAuthStart,
    OAuthCallback,
    ListChanges,
    CreateWebhook,
    ListWebhooks,
    UpdateWebhook,
    DeleteWebhook,
    RotateWebhookSecret,
    GooglePush,
    GraphPush,
    GraphLifecycle,
}

pub struct QueryParam {
    pub name: &'static str,
    pub required: bool,
    pub description: &'static str,
    pub kind: ParamKind,
}

/// What a query parameter holds, for the OpenAPI document.
#[derive(Clone, Copy, Debug)]
pub enum ParamKind {
    Text,
    /// An RFC 3339 date-time, or a date (midnight UTC).
    Instant,
    Integer {
        min: u32,
        max: u32,
    },
    Boolean,
    OneOf(&'static [&'static str]),
}

const fn param(name: &'static str, required: bool, description: &'static str) -> QueryParam {
    QueryParam {
        name,
        required,
        description,
        kind: ParamKind::Text,
    }
}

impl QueryParam {
    const fn of(self, kind: ParamKind) -> Self {
        Self { kind, ..self }
    }
}

const SCOPES: ParamKind = ParamKind::OneOf(&["instance", "following", "series"]);

/// The function behind the `$default` route (template.yaml): it answers what no route matches
/// with the API's own 404, or 405 and `Allow`.
pub const FALLBACK: RouteGroup = RouteGroup::Accounts;

pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub operation: Operation,
    pub group: RouteGroup,
    pub summary: &'static str,
    pub authenticated: bool,
    pub query: &'static [QueryParam],
    /// The success status; the bodies are documented by `openapi::bodies`.
    pub status: u16,
    /// Error statuses of this route beyond those every route may answer (400, 413, 503; 401
    /// when authenticated, 404 with path parameters, 405 for another method on its path).
    pub errors: &'static [u16],
}

const PAGE: &[QueryParam] = &[
    param("limit", false, "Page size (1-200, default 50).")
        .of(ParamKind::Integer { min: 1, max: 200 }),
    param("cursor", false, "The nextCursor of the previous page."),
];

const RANGE: &[QueryParam] = &[
    param(
        "start",
        true,
        "Range start: RFC 3339 date-time, or YYYY-MM-DD (midnight UTC). Inclusive.",
    )
    .of(ParamKind::Instant),
    param(
        "end",
        true,
        "Range end, exclusive; at most 366 days after start.",
    )
    .of(ParamKind::Instant),
    param(
        "calendarIds",
        false,
        "Comma-separated calendar ids to limit the query to.",
    ),
    param("attendee", false, "Only events with this attendee e-mail."),
    param(
        "hasConference",
        false,
        "true: only events with a Meet/Teams link; false: only without.",
    )
    .of(ParamKind::Boolean),
    param("limit", false, "Page size (1-1000, default 250).")
        .of(ParamKind::Integer { min: 1, max: 1000 }),
    param(
        "cursor",
        false,
        "The nextCursor of the previous page (same range and filters).",
    ),
];

const WINDOW: &[QueryParam] = &[
    param(
        "start",
        true,
        "Range start: RFC 3339 date-time, or YYYY-MM-DD (midnight UTC).",
    )
    .of(ParamKind::Instant),
    param(
        "end",
        true,
        "Range end, exclusive; at most 366 days after start.",
    )
    .of(ParamKind::Instant),
    param(
        "calendarIds",
        false,
        "Comma-separated calendar ids to limit the query to.",
    ),
];

pub static ROUTES: &[RouteSpec] = &[
    RouteSpec {
        method: Method::POST,
        path: "/v1/auth/register",
        operation: Operation::Register,
        group: RouteGroup::Accounts,
        summary: "Create an account and sign in",
        authenticated: false,
        query: &[],
        status: 201,
        errors: &[409, 415, 429],
    },
    RouteSpec {
        method: Method::POST,
        path: "/v1/auth/login",
        operation: Operation::Login,
        group: RouteGroup::Accounts,
        summary: "Sign in with e-mail and password",
        authenticated: false,
        query: &[],
        status: 200,
        errors: &[401, 415, 429],
    },
    RouteSpec {
        method: Method::POST,
        path: "/v1/auth/password-reset",
        operation: Operation::RequestReset,
        group: RouteGroup::Accounts,
        summary: "Ask for a password-reset e-mail (the answer is the same whether or not an account has the address)",
        authenticated: false,
        query: &[],
        status: 202,
        errors: &[415, 429],
    },
    RouteSpec {
        method: Method::POST,
        path: "/v1/auth/password-reset/confirm",
        operation: Operation::ConfirmReset,
        group: RouteGroup::Accounts,
        summary: "Set a new password with the e-mailed token (once, within 30 minutes); every session ends and a new one starts on this device",
        authenticated: false,
        query: &[],
        status: 200,
        errors: &[415],
    },
    RouteSpec {
        method: Method::POST,
        path: "/v1/auth/logout",
        operation: Operation::Logout,
        group: RouteGroup::Accounts,
        summary: "End this session",
        authenticated: true,
        query: &[],
        status: 204,
        errors: &[],
    },
    RouteSpec {
        method: Method::GET,
        path: "/v1/me",
        operation: Operation::Me,
        group: RouteGroup::Accounts,
        summary: "The signed-in user",
        authenticated: true,
        query: &[],
        status: 200,
        errors: &[],
    },
    RouteSpec {
        method: Method::DELETE,
        path: "/v1/me",
        operation: Operation::DeleteAccount,
        group: RouteGroup::Accounts,
        summary: "Erase the account (the password confirms): every grant revoked, every item of the user in every table deleted, every session ended",
        authenticated: true,
        query: &[],
        status: 204,
        errors: &[403, 415, 429],
    },
    RouteSpec {
        method: Method::GET,
        path: "/v1/me/export",
        operation: Operation::ExportData,
        group: RouteGroup::Accounts,
        summary: "All of the user's data as JSON (tokens and password hash excepted), in parts of up to 2,000 events and audit entries: follow nextCursor to the end; 5 exports an hour",
        authenticated: true,
        query: &[
            param(
                "cursor",
                false,
                "The nextCursor of the previous part; absent: a new export (counted against 5 an hour).",
            ),
            param("limit", false, "Events and audit entries per part (1-2000, default 2000).")
                .of(ParamKind::Integer { min: 1, max: 2000 }),
        ],
        status: 200,
        errors: &[429],
    },
    RouteSpec {
        method: Method::POST,
        path: "/v1/me/password",
        operation: Operation::ChangePassword,
        group: RouteGroup::Accounts,
        summary: "Change the password (the current one required); every other session ends",
        authenticated: true,
        query: &[],
        status: 204,
        errors: &[403, 415, 429],
    },
    RouteSpec {
        method: Method::GET,
        path: "/v1/audit-log",
        operation: Operation::AuditLog,
        group: RouteGroup::Accounts,
        summary: "The user's audit log, newest first",
        authenticated: true,
        query: PAGE,
        status: 200,
        errors: &[],
    },
    RouteSpec {
        method: Method::GET,
        path: "/v1/openapi.json",
        operation: Operation::OpenApi,
        group: RouteGroup::Accounts,
        summary: "This API's OpenAPI 3.1 document",
        authenticated: false,
        query: &[],
        status: 200,
        errors: &[],
    },
    RouteSpec {
        method: Method::GET,
        path: "/v1/calendars",
        operation: Operation::ListCalendars,
        group: RouteGroup::Calendars,
        summary: "The user's calendars, primary first, then by creation",
        authenticated: true,
        query: &[],
        status: 200,
        errors: &[],
    },
    RouteSpec {
        method: Method::PATCH,
        path: "/v1/calendars/{id}",
        operation: Operation::UpdateCalendar,
        group: RouteGroup::Calendars,
        summary: "Rename or recolour a calendar",
        authenticated: true,
        query: &[],
        status: 200,
        errors: &[415],
    },
    RouteSpec {
        method: Method::DELETE,
        path: "/v1/calendars/{id}",
        operation: Operation::DeleteCalendar,
        group: RouteGroup::Calendars,
        summary: "Remove a calendar; its events leave every query",
        authenticated: true,
        query: &[],
        status: 204,
        errors: &[],
    },
    RouteSpec {
        method: Method::POST,
        path: "/v1/calendars/{id}/sync",
        operation: Operation::SyncCalendar,
        group: RouteGroup::Calendars,
        summary: "Sync this calendar now (queued; answers 202)",
        authenticated: true,
        query: &[],
        status: 202,
        errors: &[409],
    },
    RouteSpec {
        method: Method::GET,
        path: "/v1/events",

        operation: Operation::ListEvents,
        group: RouteGroup::Events,
        summary: "Events of all live calendars overlapping [start, end), by start",
        authenticated: true,
        query: RANGE,
        status: 200,
        errors: &[404],
    },
    RouteSpec {
        method: Method::POST,
        path: "/v1/events",
        operation: Operation::CreateEvent,
        group: RouteGroup::Events,
        summary: "Create an event; it is written back to the provider",
        authenticated: true,
        query: &[],
        status: 201,
        errors: &[404, 409, 415],
    },
    RouteSpec {
        method: Method::GET,
        path: "/v1/events/{id}",
        operation: Operation::GetEvent,
        group: RouteGroup::Events,
        summary: "One event",
        authenticated: true,
        query: &[],
        status: 200,
        errors: &[],
    },
    RouteSpec {
        method: Method::GET,
        path: "/v1/feeds",
        operation: Operation::ListFeeds,
        group: RouteGroup::Changes,
        summary: "The user's feeds, oldest first (never their URLs: they hold the credential)",
        authenticated: true,
        query: &[],
        status: 200,
        errors: &[],
    },
    RouteSpec {
        method: Method::POST,
        path: "/v1/feeds",
        operation: Operation::CreateFeed,
        group: RouteGroup::Changes,
        summary: "Make a secret ICS feed URL of the merged calendar (revocable)",
        authenticated: true,
        query: &[],
        status: 201,
        errors: &[415],
    },
    RouteSpec {
        method: Method::DELETE,
        path: "/v1/feeds/{id}",
        operation: Operation::DeleteFeed,
        group: RouteGroup::Changes,
        summary: "Revoke a feed: its URL stops working at once",
        authenticated: true,
        query: &[],
        status: 204,
        errors: &[],
    },
    RouteSpec {
        method: Method::GET,
        path: "/v1/feeds/{token}/calendar.ics",
        operation: Operation::ReadFeed,
        group: RouteGroup::Changes,
        summary: "The merged calendar as RFC 5545 text (the URL is the credential)",
        authenticated: false,
        query: &[],
        status: 200,
        errors: &[422],
    },
    RouteSpec {
        method: Method::GET,
        path: "/v1/conflicts",
        operation: Operation::Conflicts,
        group: RouteGroup::Events,
        summary: "Where busy events clash across all calendars (groups; all-day apart)",
        authenticated: true,
        query: WINDOW,
        status: 200,
        errors: &[404],
    },
    RouteSpec {
        method: Method::GET,
        path: "/v1/freebusy",
        operation: Operation::FreeBusy,
        group: RouteGroup::Events,
        summary: "Merged busy time across calendars, and per calendar",
        authenticated: true,
        query: WINDOW,
        status: 200,
        errors: &[404],
    },
    RouteSpec {
        method: Method::POST,
        path: "/v1/availability",
        operation: Operation::Availability,
        group: RouteGroup::Events,
        summary: "Free slots of a length within working hours, across calendars",
        authenticated: true,
        query: &[],
        status: 200,
        errors: &[404, 415],
    },
    RouteSpec {
        method: Method::GET,
        path: "/v1/events/{id}/instances",
        operation: Operation::EventInstances,
        group: RouteGroup::Events,
        summary: "A recurring event's occurrences and exceptions in [start, end); the id is the series' or any of its occurrences'",
        authenticated: true,
        query: &[
            param("start", true, "Range start (RFC 3339 or YYYY-MM-DD).").of(ParamKind::Instant),
            param("end", true, "Range end, exclusive; at most 366 days after start.")
                .of(ParamKind::Instant),
        ],
        status: 200,
        errors: &[409],
    },
    RouteSpec {
        method: Method::PATCH,
        path: "/v1/events/{id}",
        operation: Operation::UpdateEvent,
        group: RouteGroup::Events,
        summary: "Change or move an event; for a recurring event one occurrence, this and following, or the whole series",
        authenticated: true,
        query: &[param(
            "scope",
            false,
            "Recurring events: `instance` (the default for an occurrence id: that occurrence alone), `following` (split the series there: a new series from this occurrence on), `series` (the default for a series id: the whole series; `recurrence` may change).",
        )
        .of(SCOPES)],
        status: 200,
        errors: &[409, 415],
    },
    RouteSpec {
        method: Method::DELETE,
        path: "/v1/events/{id}",
        operation: Operation::DeleteEvent,
        group: RouteGroup::Events,
        summary: "Delete an event (soft delete; purged after 30 days); for a recurring event one occurrence, this and following, or the whole series",
        authenticated: true,
        query: &[param(
            "scope",
            false,
            "Recurring events: `instance` (the default for an occurrence id: cancel that occurrence), `following` (end the series before this occurrence), `series` (the default for a series id).",
        )
        .of(SCOPES)],
        status: 204,
        errors: &[409],
    },
    RouteSpec {
        method: Method::GET,
        path: "/v1/connections",
        operation: Operation::ListConnections,
        group: RouteGroup::Connections,
        summary: "The connected provider accounts: provider, account e-mail, status, last token refresh, calendars",
        authenticated: true,
        query: &[],
        status: 200,
        errors: &[],
    },
    RouteSpec {
        method: Method::DELETE,
        path: "/v1/connections/{id}",
        operation: Operation::Disconnect,
        group: RouteGroup::Connections,
        summary: "Disconnect an account: the grant is revoked at the provider (where it allows), tokens are erased, its calendars and their events leave every query, syncs stop",
        authenticated: true,
        query: &[],
        status: 204,
        errors: &[],
    },
    RouteSpec {
        method: Method::POST,
        path: "/v1/connections/apple",
        operation: Operation::ConnectApple,
        group: RouteGroup::Connections,
        summary: "Connect an iCloud (or other CalDAV) account with an app-specific password: discovery, then its calendars",
        authenticated: true,
        query: &[],
        status: 201,
        errors: &[415, 502],
    },
    RouteSpec {
        method: Method::POST,
        path: "/v1/connections/{id}",
        operation: Operation::StartConnection,
        group: RouteGroup::Connections,
        summary: "Connect a Google or Microsoft account (`id`: google or microsoft): answers the authorization URL to open in the user's browser",
        authenticated: true,
        query: &[],
        status: 201,
        errors: &[503],
    },
    RouteSpec {
        method: Method::GET,
        path: "/oauth/{provider}/start",
        operation: Operation::OAuthStart,
        group: RouteGroup::OAuthCallback,
        summary: "The authorizationUrl, opened in the user's browser: binds the flow to that browser (cookie) and redirects to the provider's consent screen",
        authenticated: false,
        query: &[param(
            "state",
            false,
            "The flow's state, as in the authorizationUrl (without it: redirected with error=state_missing).",
        )],
        status: 302,
        errors: &[],
    },
    RouteSpec {
        method: Method::GET,
        path: "/oauth/{provider}/callback",
        operation: Operation::OAuthCallback,
        group: RouteGroup::OAuthCallback,
        summary: "Where the provider sends the browser back; redirects to the app with a status code",
        authenticated: false,
        query: &[
            param(
                "state",
                false,
                "The state of the authorization URL (without it: redirected with error=state_missing).",
            ),
            param("code", false, "The authorization code."),
            param("error", false, "The provider's error, e.g. access_denied."),
        ],
        status: 302,
        errors: &[],
    },
    RouteSpec {
        method: Method::GET,
        path: "/v1/changes",
        operation: Operation::ListChanges,
        group: RouteGroup::Changes,
        summary: "Every created, changed and deleted event since a cursor, in the order they happened; paged and resumable",
        authenticated: true,
        query: &[
            param(
                "cursor",
                false,
                "The nextCursor of the previous answer; `now` starts at the present (no changes, a cursor); absent: from the oldest change kept (30 days).",
            ),
            param("limit", false, "Changes per page (1-1000, default 100).")
                .of(ParamKind::Integer { min: 1, max: 1000 }),
        ],
        status: 200,
        errors: &[410],
    },
    RouteSpec {
        method: Method::POST,
        path: "/v1/webhooks",
        operation: Operation::CreateWebhook,
        group: RouteGroup::Changes,
        summary: "Register a URL for signed deliveries of the account's changes (event.created, event.updated, event.deleted); answers the signing secret once",
        authenticated: true,
        query: &[],
        status: 201,
        errors: &[409, 415],
    },
    RouteSpec {
        method: Method::GET,
        path: "/v1/webhooks",
        operation: Operation::ListWebhooks,
        group: RouteGroup::Changes,
        summary: "The account's webhooks, with their state (never their secrets)",
        authenticated: true,
        query: &[],
        status: 200,
        errors: &[],
    },
    RouteSpec {
        method: Method::PATCH,
        path: "/v1/webhooks/{id}",
        operation: Operation::UpdateWebhook,
        group: RouteGroup::Changes,
        summary: "Change a webhook's URL or event types, or enable it again after it was disabled",
        authenticated: true,
        query: &[],
        status: 200,
        errors: &[409, 415],
    },
    RouteSpec {
        method: Method::DELETE,
        path: "/v1/webhooks/{id}",
        operation: Operation::DeleteWebhook,
        group: RouteGroup::Changes,
        summary: "Delete a webhook: deliveries stop",
        authenticated: true,
        query: &[],
        status: 204,
        errors: &[],
    },
    RouteSpec {
        method: Method::POST,
        path: "/v1/webhooks/{id}/rotate-secret",
        operation: Operation::RotateWebhookSecret,
        group: RouteGroup::Changes,
        summary: "A new signing secret; the current one keeps signing beside it for overlapHours (default 24)",
        authenticated: true,
        query: &[],
        status: 200,
        errors: &[409, 415],
    },
    RouteSpec {
        method: Method::POST,
        path: "/push/google",
        operation: Operation::GooglePush,
        group: RouteGroup::Push,
        summary: "Google Calendar push notifications (events.watch channels): checked against the channel's id and token, then one sync of that calendar is queued",
        authenticated: false,
        query: &[],
        status: 204,
        errors: &[404],
    },
    RouteSpec {
        method: Method::POST,
        path: "/push/microsoft",
        operation: Operation::GraphPush,
        group: RouteGroup::Push,
        summary: "Microsoft Graph change notifications (and the subscription validation handshake: ?validationToken= is echoed as text/plain)",
        authenticated: false,
        query: &[param(
            "validationToken",
            false,
            "Graph's validation handshake (no body): echoed as text/plain with 200.",
        )],
        status: 202,
        errors: &[415],
    },
    RouteSpec {
        method: Method::POST,
        path: "/push/microsoft/lifecycle",
        operation: Operation::GraphLifecycle,
        group: RouteGroup::Push,
        summary: "Microsoft Graph lifecycle notifications: reauthorizationRequired, subscriptionRemoved, missed",
        authenticated: false,
        query: &[param(
            "validationToken",
            false,
            "Graph's validation handshake (no body): echoed as text/plain with 200.",
        )],
        status: 202,
        errors: &[415],
    },
];

/// Matches a concrete path against a template like `/v1/events/{id}`; returns the parameters.
pub fn match_path<'p>(
    template: &'static str,
    path: &'p str,
) -> Option<Vec<(&'static str, &'p str)>> {
    let mut params = Vec::new();
    let mut concrete = path.split('/');
    for segment in template.split('/') {
        let value = concrete.next()?;
        match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) if !value.is_empty() => params.push((name, value)),
            Some(_) => return None,
            None if segment == value => {}
            None => return None,
        }
    }
    concrete.next().is_none().then_some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_templates_exactly() {
        assert_eq!(
            match_path("/v1/events/{id}", "/v1/events/abc"),
            Some(vec![("id", "abc")])
        );
        assert_eq!(match_path("/v1/events/{id}", "/v1/events/"), None);
        assert_eq!(match_path("/v1/events/{id}", "/v1/events/a/b"), None);
        assert_eq!(match_path("/v1/events", "/v1/events"), Some(vec![]));
        assert_eq!(match_path("/v1/events", "/v1/eventsx"), None);
    }
}
