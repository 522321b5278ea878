//! The user's calendars: seed pattern 8 (primary first, then by creation, with event counts).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::input::{self, json_body};
use super::instant::Instant;
use super::{ApiRequest, ApiResponse, App};
use crate::error::{ApiError, ApiResult};
use crate::model::{AuditEntry, Connection, ConnectionStatus, Provider};
use crate::store::{CalendarChanges, Store, StoreError};

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CalendarDto {
    pub id: String,
    pub provider: Provider,
    /// The user's name for it when set, else the provider's.
    pub name: String,
    pub provider_name: String,
    pub color: String,
    pub is_primary: bool,
    pub is_connected: bool,
    pub status: ConnectionStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_synced_at: Option<Instant>,
    pub event_count: i64,
    pub created_at: Instant,
}

impl From<&Connection> for CalendarDto {
    fn from(c: &Connection) -> Self {
        Self {
            id: c.id.clone(),
            provider: c.provider,
            name: c.display_name().to_owned(),
            provider_name: c.calendar_name.clone(),
            color: c.calendar_color.clone(),
            is_primary: c.is_primary,
            is_connected: c.is_connected,
            status: c.status,
            last_error: c.last_error.clone(),
            last_synced_at: c.last_synced_at.map(Into::into),
            event_count: c.event_count.max(0),
            created_at: c.created_at.into(),
        }
    }
}

#[derive(Serialize, JsonSchema)]
pub struct CalendarListDto {
    pub calendars: Vec<CalendarDto>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateCalendarRequest {
    /// A name of your own (1-200 characters); `null` goes back to the provider's name.
    #[serde(default, deserialize_with = "input::nullable")]
    #[schemars(with = "Option<String>")]
    pub name: Option<Option<String>>,
    /// `#RRGGBB`.
    #[serde(default)]
    pub color: Option<String>,
}

/// The user's calendars that are not deleted, primary first, then oldest first.
pub(crate) fn visible(mut connections: Vec<Connection>) -> Vec<Connection> {
    connections.retain(|c| c.deleted_at.is_none());
    connections.sort_by(|a, b| {
        b.is_primary
            .cmp(&a.is_primary)
            .then(a.created_at.cmp(&b.created_at))
            .then(a.id.cmp(&b.id))
    });
    connections
}

pub async fn list(app: &App, req: &ApiRequest) -> ApiResult<ApiResponse> {
    let user_id = app.authenticate(req).await?;
    let calendars = visible(app.store.connections(&user_id).await?)
        .iter()
        .map(CalendarDto::from)
        .collect();
    ApiResponse::ok(&CalendarListDto { calendars })
}

pub async fn update(app: &App, req: &ApiRequest, id: &str) -> ApiResult<ApiResponse> {
    let user_id = app.authenticate(req).await?;
    let body: UpdateCalendarRequest = json_body(req)?;
    if !crate::ids::is_id(id) {
        return Err(ApiError::not_found("calendar"));
    }
    let changes = CalendarChanges {
        name_override: body
            .name
            .map(|name| {
                name.map(|n| input::required_text(&n, "name", 200))
                    .transpose()
            })
            .transpose()?,
        color: body.color.as_deref().map(input::color).transpose()?,
    };
    let audit = AuditEntry::new(&user_id, "CALENDAR_UPDATED", "CALENDAR", Some(id));
    match app
        .store
        .update_calendar(&user_id, id, &changes, &audit)
        .await
    {
        Ok(()) => {}
        Err(StoreError::ConditionFailed) => return Err(ApiError::not_found("calendar")),
        Err(e) => return Err(e.into()),
    }
    let calendar = app
        .store
        .connection(&user_id, id)
        .await?
        .filter(|c| c.deleted_at.is_none())
        .ok_or_else(|| ApiError::not_found("calendar"))?;
    ApiResponse::ok(&CalendarDto::from(&calendar))
}

pub async fn delete(app: &App, req: &ApiRequest, id: &str) -> ApiResult<ApiResponse> {
    let user_id = app.authenticate(req).await?;
    if !crate::ids::is_id(id) {
        return Err(ApiError::not_found("calendar"));
    }
    let audit = AuditEntry::new(&user_id, "CALENDAR_DELETED", "CALENDAR", Some(id));
    // Read before: the listing below leaves deleted calendars out.
    let calendar = app.store.connection(&user_id, id).await?;
    match app
        .store
        .soft_delete_connection(&user_id, id, Store::now(), &audit)
        .await
    {
        Ok(()) => {}
        Err(StoreError::ConditionFailed) => return Err(ApiError::not_found("calendar")),
        Err(e) => return Err(e.into()),
    }
    if let Some(calendar) = &calendar {
        crate::sync::push::retire(app, calendar).await;
    }
    let calendars = app.store.connections(&user_id).await?;
    let account_id = calendar.and_then(|c| c.account_id);
    if let Some(account_id) = account_id {
        let still_used = calendars.iter().any(|c| {
            c.deleted_at.is_none() && c.account_id.as_deref() == Some(account_id.as_str())
        });
        if !still_used {
            super::connections::disconnect_account(app, &user_id, &account_id).await?;
        }
    }
    Ok(ApiResponse::no_content())
}

/// `POST /v1/calendars/{id}/sync`: queue a sync now. The FIFO queue keeps one sync per calendar
/// at a time, and repeated requests within five minutes are deduplicated.
pub async fn sync_now(app: &App, req: &ApiRequest, id: &str) -> ApiResult<ApiResponse> {
    let user_id = app.authenticate(req).await?;
    if !crate::ids::is_id(id) {
        return Err(ApiError::not_found("calendar"));
    }
    let calendar = app
        .store
        .connection(&user_id, id)
        .await?
        .filter(|c| c.deleted_at.is_none())
        .ok_or_else(|| ApiError::not_found("calendar"))?;
    if !calendar.is_connected {
        return Err(ApiError::conflict(
            "reauthorization_required",
            "this calendar's account must be connected again before it can sync",
        ));
    }
    app.enqueue_sync(&crate::queue::SyncRequest {
        user_id,
        connection_id: calendar.id.clone(),
        reason: "manual".into(),
    })
    .await?;
    ApiResponse::json(http::StatusCode::ACCEPTED, &CalendarDto::from(&calendar))
}
