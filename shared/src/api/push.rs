//! Where providers' push notifications arrive (`push-receiver`): each is checked against the
//! channel we stored (its id and the hash of its secret) and asks for one sync of that calendar
//! (`App::request_sync`, so a burst costs one sync). Nothing else is done while the provider
//! waits: the answer comes after one read and one conditional write.

use std::collections::HashMap;

use http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::input::json_body;
use super::{ApiRequest, ApiResponse};
use crate::app::App;
use crate::crypto::constant_time_eq;
use crate::error::{ApiError, ApiResult};
use crate::ids;
use crate::model::Provider;
use crate::store::ChannelRecord;

/// The channel a notification names, if it is ours and its secret matches.
async fn verified(
    app: &App,
    provider: Provider,
    channel_id: &str,
    secret: Option<&str>,
) -> ApiResult<Option<ChannelRecord>> {
    if channel_id.is_empty() || channel_id.len() > 128 {
        return Ok(None);
    }
    let Some(record) = app.store.push_channel(channel_id).await? else {
        return Ok(None);
    };
    let matches = record.provider == provider
        && secret.is_some_and(|s| {
            constant_time_eq(ids::sha256_hex(s).as_bytes(), record.secret_hash.as_bytes())
        });
    Ok(matches.then_some(record))
}

/// `POST /push/google`: a Google channel notification (headers only). `sync` (the channel's
/// first message) needs nothing; any other state asks for a sync. Unknown channels and wrong
/// tokens get a 4xx, which Google does not retry.
pub async fn google(app: &App, req: &ApiRequest) -> ApiResult<ApiResponse> {
    let header = |name: &str| req.header(name).map(str::trim);
    let (Some(channel_id), Some(state)) =
        (header("x-goog-channel-id"), header("x-goog-resource-state"))
    else {
        return Err(ApiError::bad_request(
            "not_a_notification",
            "X-Goog-Channel-ID and X-Goog-Resource-State are required",
        ));
    };
    let Some(record) = verified(
        app,
        Provider::Google,
        channel_id,
        header("x-goog-channel-token"),
    )
    .await?
    else {
        tracing::warn!("push notification for an unknown channel or with a wrong token refused");
        return Err(ApiError::not_found("channel"));
    };
    if state != "sync" {
        app.request_sync(&record.user_id, &record.connection_id, "push")
            .await?;
    }
    Ok(ApiResponse::no_content())
}

/// Graph's change notifications, as far as we read them.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct GraphNotifications {
    pub value: Vec<GraphNotification>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GraphNotification {
    pub subscription_id: String,
    #[serde(default)]
    pub client_state: Option<String>,
    /// `reauthorizationRequired`, `subscriptionRemoved`, `missed` (lifecycle notifications).
    #[serde(default)]
    pub lifecycle_event: Option<String>,
}

/// What we made of a batch of Graph notifications.
#[derive(Debug, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationReceipt {
    /// Notifications of our subscriptions with the right `clientState`.
    pub accepted: usize,
    /// Others (unknown subscription, wrong `clientState`): discarded.
    pub discarded: usize,
}

/// A batch of notifications; no body at all is an empty batch (the validation handshake's
/// requests carry none, and nothing is lost by accepting an empty one).
fn batch(req: &ApiRequest) -> ApiResult<GraphNotifications> {
    if req.body.is_empty() {
        return Ok(GraphNotifications { value: Vec::new() });
    }
    json_body(req)
}

/// Graph's validation handshake (a POST with `validationToken` and no body): echo the token as
/// text within 10 seconds. A body makes it a notification batch, checked as such.
fn validation(req: &ApiRequest) -> Option<ApiResponse> {
    if !req.body.is_empty() {
        return None;
    }
    let token = req.query.get("validationToken")?;
    Some(ApiResponse {
        status: StatusCode::OK,
        headers: vec![("x-content-type-options".into(), "nosniff".into())],
        body: None,
        raw: Some(("text/plain".into(), token.clone())),
    })
}

/// `POST /push/microsoft`: change notifications (or the validation handshake). Answered 202;
/// each verified one asks for a sync of its calendar (several of one calendar cost one).
pub async fn microsoft(app: &App, req: &ApiRequest) -> ApiResult<ApiResponse> {
    if let Some(echo) = validation(req) {
        return Ok(echo);
    }
    let batch = batch(req)?;
    let mut receipt = NotificationReceipt::default();
    let mut calendars: HashMap<String, ChannelRecord> = HashMap::new();
    for notification in batch.value.iter().take(1000) {
        match verified(
            app,
            Provider::Microsoft,
            &notification.subscription_id,
            notification.client_state.as_deref(),
        )
        .await?
        {
            Some(record) => {
                receipt.accepted += 1;
                calendars.insert(record.connection_id.clone(), record);
            }
            None => receipt.discarded += 1,
        }
    }
    for record in calendars.values() {
        app.request_sync(&record.user_id, &record.connection_id, "push")
            .await?;
    }
    if receipt.discarded > 0 {
        tracing::warn!(
            discarded = receipt.discarded,
            "Graph notifications of unknown subscriptions or with a wrong clientState discarded"
        );
    }
    ApiResponse::json(StatusCode::ACCEPTED, &receipt)
}

/// `POST /push/microsoft/lifecycle`: `reauthorizationRequired` renews the subscription at the
/// next sync, `subscriptionRemoved` forgets it (the next sync creates another), `missed` makes
/// the next sync list in full. Each asks for that sync now.
pub async fn microsoft_lifecycle(app: &App, req: &ApiRequest) -> ApiResult<ApiResponse> {
    if let Some(echo) = validation(req) {
        return Ok(echo);
    }
    let batch = batch(req)?;
    let mut receipt = NotificationReceipt::default();
    for notification in batch.value.iter().take(1000) {
        let Some(record) = verified(
            app,
            Provider::Microsoft,
            &notification.subscription_id,
            notification.client_state.as_deref(),
        )
        .await?
        else {
            receipt.discarded += 1;
            continue;
        };
        receipt.accepted += 1;
        let (user, calendar, id) = (&record.user_id, &record.connection_id, &record.channel_id);
        let reason = match notification.lifecycle_event.as_deref() {
            Some("reauthorizationRequired") => {
                app.store.request_push_renewal(user, calendar, id).await?;
                "push_renew"
            }
            Some("subscriptionRemoved") => {
                app.store.drop_push_channel(user, calendar, id).await?;
                "push_removed"
            }
            Some("missed") => {
                app.store.forget_sync_cursor(user, calendar).await?;
                "push_missed"
            }
            other => {
                tracing::info!(event = ?other, "lifecycle notification ignored");
                continue;
            }
        };
        app.request_sync(user, calendar, reason).await?;
    }
    ApiResponse::json(StatusCode::ACCEPTED, &receipt)
}
