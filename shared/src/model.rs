//! The domain: what calsync knows about users, their calendars (connections), events and audit
//! entries. Field names follow the seed schema; the same structs are the stored items.

use chrono::{DateTime, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Soft-deleted events are purged this long after deletion (seed pattern 7).
pub const PURGE_AFTER_DAYS: i64 = 30;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Provider {
    Google,
    Microsoft,
    Apple,
}

impl Provider {
    /// The provider's name in URLs: `google`, `microsoft`, `apple`.
    pub fn slug(self) -> &'static str {
        match self {
            Self::Google => "google",
            Self::Microsoft => "microsoft",
            Self::Apple => "apple",
        }
    }

    /// Google and Microsoft authorise by OAuth; Apple (CalDAV) by app-specific password.
    pub fn uses_oauth(self) -> bool {
        !matches!(self, Self::Apple)
    }

    pub fn from_slug(slug: &str) -> Option<Self> {
        [Self::Google, Self::Microsoft, Self::Apple]
            .into_iter()
            .find(|p| p.slug() == slug)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Google => "GOOGLE",
            Self::Microsoft => "MICROSOFT",
            Self::Apple => "APPLE",
        }
    }
}

/// Where an event stands relative to its provider (the seed's syncStatus).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SyncStatus {
    Pending,
    Synced,
    Failed,
    Deleted,
}

/// A local change not yet written back to the provider. Its presence puts the event in the
/// `bySyncStatus` index; write-back removes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PendingChange {
    Create,
    Update,
    Delete,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub first_name: String,
    pub last_name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub user_id: String,
    pub created_at: DateTime<Utc>,
    /// Epoch seconds; also the table's TTL attribute.
    pub expires_at: i64,
}

/// Why a calendar is or is not syncing, as the API shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    Active,
    ReauthorizationRequired,
    Error,
}

impl ConnectionStatus {
    /// The stored and shown form (`active`, `reauthorization_required`, `error`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::ReauthorizationRequired => "reauthorization_required",
            Self::Error => "error",
        }
    }
}

/// One connected provider calendar (the seed's CalendarConnection).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub user_id: String,
    pub id: String,
    pub provider: Provider,
    /// The provider's id of the calendar.
    pub calendar_id: String,
    pub calendar_name: String,
    /// The user's own name for the calendar, shown instead of the provider's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_override: Option<String>,
    pub calendar_color: String,
    pub is_primary: bool,
    pub is_connected: bool,
    pub status: ConnectionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The provider account whose credentials reach this calendar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_synced_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Live events of this calendar, kept by atomic ADD with every create and delete.
    #[serde(default)]
    pub event_count: i64,
    /// The provider's push channel for this calendar (Google channel, Graph subscription).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushChannel>,
    /// The polling interval the last sync chose (CalDAV adapts it: `sync::polling`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval_seconds: Option<i64>,
}

/// A provider's push channel of one calendar: Google `events.watch` channel or Microsoft Graph
/// subscription. Its secret (channel token, `clientState`) is stored only as a hash, with the
/// channel's own record (`store::push`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushChannel {
    /// Google channel id, or Graph subscription id.
    pub id: String,
    /// Google's `resourceId`, which `channels.stop` needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    pub expires_at: DateTime<Utc>,
    /// The provider asked for it to be renewed (Graph `reauthorizationRequired`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub renew: bool,
}

impl Connection {
    /// A newly connected, active calendar; its id is derived from what makes it unique.
    pub fn new(
        user_id: &str,
        provider: Provider,
        calendar_id: &str,
        calendar_name: &str,
        calendar_color: &str,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            user_id: user_id.to_owned(),
            id: crate::ids::connection_id(user_id, provider.as_str(), calendar_id),
            provider,
            calendar_id: calendar_id.to_owned(),
            calendar_name: calendar_name.to_owned(),
            name_override: None,
            calendar_color: calendar_color.to_owned(),
            is_primary: false,
            is_connected: true,
            status: ConnectionStatus::Active,
            last_error: None,
            account_id: None,
            sync_token: None,
            last_synced_at: None,
            deleted_at: None,
            created_at: now,
            event_count: 0,
            push: None,
            poll_interval_seconds: None,
        }
    }

    /// Events of a calendar take part in queries only while it is connected and not deleted.
    pub fn is_live(&self) -> bool {
        self.is_connected && self.deleted_at.is_none()
    }

    pub fn display_name(&self) -> &str {
        self.name_override.as_deref().unwrap_or(&self.calendar_name)
    }
}

/// Where a CalDAV account's calendars live, found by discovery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CalDavLocation {
    pub server_url: String,
    pub principal_url: String,
    pub home_url: String,
    pub username: String,
}

/// A signed-in provider account: the credentials every calendar of that account uses. Tokens are
/// per account, not per calendar, because refresh tokens rotate: two calendars holding copies of
/// one token would invalidate each other.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderAccount {
    pub user_id: String,
    pub id: String,
    pub provider: Provider,
    /// The account's login at the provider (e-mail or user name).
    pub account_email: String,
    /// OAuth access token, or the CalDAV app password (sealed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<crate::crypto::Sealed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<crate::crypto::Sealed>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::time::key_serde_opt"
    )]
    pub token_expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub failed_refresh_count: u32,
    /// When the provider last gave us tokens (the grant, or a refresh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_refreshed_at: Option<DateTime<Utc>>,
    pub is_connected: bool,
    pub status: ConnectionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caldav: Option<CalDavLocation>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ProviderAccount {
    pub fn new(user_id: &str, provider: Provider, account_email: &str, now: DateTime<Utc>) -> Self {
        Self {
            user_id: user_id.to_owned(),
            id: crate::ids::connection_id(
                user_id,
                provider.as_str(),
                &format!("account:{account_email}"),
            ),
            provider,
            account_email: account_email.to_owned(),
            access_token: None,
            refresh_token: None,
            token_expires_at: None,
            failed_refresh_count: 0,
            tokens_refreshed_at: None,
            is_connected: true,
            status: ConnectionStatus::Active,
            last_error: None,
            caldav: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// A pending OAuth authorisation (the seed's OAuthState). Stored under the SHA-256 of `state`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuthState {
    pub user_id: String,
    pub provider: Provider,
    /// Epoch seconds by which the browser must open the start route.
    pub launch_by: i64,
    /// SHA-256 of the browser binding set as a cookie by the start route; `None` until then. The
    /// PKCE verifier is derived from the binding, so this item alone cannot finish the flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser_hash: Option<String>,
    /// Epoch seconds; the TTL attribute.
    pub expires_at: i64,
    #[serde(default)]
    pub consumed: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Attendee {
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// needsAction, accepted, declined or tentative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_status: Option<ResponseStatus>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ResponseStatus {
    NeedsAction,
    Accepted,
    Declined,
    Tentative,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Reminder {
    pub method: ReminderMethod,
    /// Minutes before the start, at most four weeks.
    pub minutes: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ReminderMethod {
    Popup,
    Email,
}

/// One event of one calendar (the seed's CalendarEvent).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub user_id: String,
    pub connection_id: String,
    /// Unique within the connection: the provider's event id for imported events, our own id
    /// (usable as a provider id) for events created here.
    pub event_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_event_id: Option<String>,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Instants in UTC; for all-day events, midnight of the dates in the event's zone.
    #[serde(with = "crate::time::key_serde")]
    pub start_time: DateTime<Utc>,
    #[serde(with = "crate::time::key_serde")]
    pub end_time: DateTime<Utc>,
    pub is_all_day: bool,
    /// All-day events: the dates themselves (end exclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default)]
    pub attendees: Vec<Attendee>,
    #[serde(default)]
    pub reminders: Vec<Reminder>,
    /// Conference links and provider extras (Meet, Teams), as the provider gave them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_metadata: Option<serde_json::Value>,
    #[serde(default)]
    pub has_conference: bool,
    pub sync_status: SyncStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_change: Option<PendingChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_synced_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub is_recurring: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence_rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence_frequency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence_interval: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence_end_date: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<DateTime<Utc>>,
    /// Epoch seconds, 30 days after deletion; the table's TTL attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purge_at: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Shown as free (Google `transparency: transparent`, Graph `showAs: free`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transparent: bool,
    /// For an exception of a recurring event: the start of the instance it replaces.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::time::key_serde_opt"
    )]
    pub original_start_time: Option<DateTime<Utc>>,
    /// The provider's version tag (ETag / changeKey), for preconditions on write-back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_etag: Option<String>,
    /// Why the last write-back of a local change failed (it is retried with the next sync).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_error: Option<String>,
    /// Hash of the provider's content as last stored: an unchanged event costs no write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// A tombstone child that cancels one occurrence of its series (kept, never purged, so the
    /// occurrence stays cancelled).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancels_instance: bool,
    /// An instance of a series its provider expands (Graph calendarView): stored as it comes,
    /// and not an exception of a master we expand. On a series: its provider lists its
    /// occurrences, so it is stored for editing only and never expanded here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub provider_expanded: bool,
    /// Incremented by every write; writes are conditional on the version they read.
    pub version: u64,
    /// Computed from a series for a query, never stored.
    #[serde(skip)]
    pub is_occurrence: bool,
}

impl Event {
    /// A plain timed event in sync with its provider; callers set what else they know.
    pub fn new(
        user_id: &str,
        connection_id: &str,
        event_key: &str,
        title: &str,
        (start_time, end_time): (DateTime<Utc>, DateTime<Utc>),
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            user_id: user_id.to_owned(),
            connection_id: connection_id.to_owned(),
            event_key: event_key.to_owned(),
            provider_event_id: None,
            title: title.to_owned(),
            description: None,
            location: None,
            start_time,
            end_time,
            is_all_day: false,
            start_date: None,
            end_date: None,
            timezone: None,
            attendees: Vec::new(),
            reminders: Vec::new(),
            provider_metadata: None,
            has_conference: false,
            sync_status: SyncStatus::Synced,
            pending_change: None,
            last_synced_at: None,
            is_recurring: false,
            recurrence_rule: None,
            recurrence_frequency: None,
            recurrence_interval: None,
            recurrence_end_date: None,
            parent_event_id: None,
            deleted_at: None,
            purge_at: None,
            created_at: now,
            updated_at: now,
            transparent: false,
            original_start_time: None,
            provider_etag: None,
            sync_error: None,
            fingerprint: None,
            cancels_instance: false,
            provider_expanded: false,
            version: 1,
            is_occurrence: false,
        }
    }

    pub fn public_id(&self) -> String {
        crate::ids::encode_event_id(&self.connection_id, &self.event_key)
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    /// In the time index (range reads, the feed): live, and not a series whose occurrences its
    /// provider lists itself (a Graph series master).
    pub fn is_listed(&self) -> bool {
        !(self.is_deleted() || (self.is_recurring && self.provider_expanded))
    }

    /// The start of the occurrence of a series this child replaces (moved, changed or cancelled),
    /// if it is one: the range read leaves that occurrence out of the expansion.
    pub fn replaced_occurrence(&self) -> Option<DateTime<Utc>> {
        let replaces = self.parent_event_id.is_some()
            && !self.provider_expanded
            && (!self.is_deleted() || self.cancels_instance);
        self.original_start_time.filter(|_| replaces)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuditStatus {
    Success,
    Failure,
}

/// One line of a user's audit log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub user_id: String,
    pub id: String,
    pub action: String,
    pub resource_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    pub status: AuditStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

impl AuditEntry {
    pub fn new(
        user_id: &str,
        action: &str,
        resource_type: &str,
        resource_id: Option<&str>,
    ) -> Self {
        Self {
            user_id: user_id.to_owned(),
            id: ulid::Ulid::new().to_string(),
            action: action.to_owned(),
            resource_type: resource_type.to_owned(),
            resource_id: resource_id.map(str::to_owned),
            status: AuditStatus::Success,
            error_message: None,
            metadata: None,
            created_at: Utc::now(),
        }
    }

    pub fn failed(mut self, message: impl Into<String>) -> Self {
        self.status = AuditStatus::Failure;
        self.error_message = Some(message.into());
        self
    }

    pub fn with_metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = Some(metadata);
        self
    }
}
