//! Provider push channels of a calendar (docs/decisions.md 51): a Google `events.watch` channel
//! or a Microsoft Graph subscription, created and renewed by the calendar's sync (which holds
//! its tokens and runs at least every [`PUSHED_SYNC_INTERVAL`]) and stopped when the calendar
//! or its account goes. A notification only ever asks for a sync, so a lost one costs latency
//! until the next notification or poll, never data.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::feeds::google::GoogleFeed;
use super::feeds::microsoft::GraphFeed;
use super::feeds::Feed;
use crate::app::App;
use crate::ids;
use crate::model::{Connection, Provider, PushChannel};
use crate::providers::{exchange, status_error, ProviderError};
use crate::store::ChannelRecord;

/// How long a Google channel is asked to live (Google's default and longest for events).
pub const GOOGLE_CHANNEL_TTL: Duration = Duration::days(7);
/// How long a Graph subscription is asked to live: under both limits Microsoft has documented for
/// Outlook events (4,230 minutes, later 10,080), so creation cannot fail on either (decisions 60).
pub const GRAPH_SUBSCRIPTION_TTL: Duration = Duration::minutes(4_200);
/// A channel this close to its end is renewed by the next sync.
pub const RENEW_WITHIN: Duration = Duration::days(1);
/// How often a calendar with a live channel is still polled: the safety net for notifications
/// lost on the way (providers deliver at most once and do not replay).
pub const PUSHED_SYNC_INTERVAL: Duration = Duration::minutes(15);

/// Where notifications are sent: `<PUSH_NOTIFICATION_BASE>/push/{google,microsoft}`.
pub fn address(base: &str, provider: Provider) -> String {
    format!("{base}/push/{}", provider.slug())
}

/// Makes sure the calendar has a live channel, renewing one near its end; true when it has
/// one afterwards. Failures are logged: the calendar is then polled as before.
pub async fn ensure(app: &App, conn: &Connection, feed: &Feed) -> bool {
    let Some(base) = app.config.push_notification_base.as_deref() else {
        return false;
    };
    let now = Utc::now();
    if let Some(channel) = &conn.push {
        if !channel.renew && channel.expires_at - now > RENEW_WITHIN {
            return true;
        }
    }
    let result = match feed {
        Feed::Google(google) => renew_google(app, conn, google, base, now).await,
        Feed::Microsoft(graph) => renew_graph(app, conn, graph, base, now).await,
        Feed::CalDav(_) => return false,
    };
    match result {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(connection = %conn.id, error = %e, "push channel not set up; polling instead");
            // A channel that still has time left keeps working until it ends.
            conn.push.as_ref().is_some_and(|c| c.expires_at > now)
        }
    }
}

async fn renew_google(
    app: &App,
    conn: &Connection,
    feed: &GoogleFeed,
    base: &str,
    now: DateTime<Utc>,
) -> Result<(), ProviderError> {
    // Google channels cannot be extended: a new one replaces the old, which is then stopped.
    let channel_id = ids::new_id();
    let token = ids::new_secret_token();
    let calendar: String =
        url::form_urlencoded::byte_serialize(conn.calendar_id.as_bytes()).collect();
    let body = json!({
        "id": channel_id,
        "type": "web_hook",
        "address": address(base, Provider::Google),
        "token": token,
        "params": {"ttl": GOOGLE_CHANNEL_TTL.num_seconds().to_string()},
    });
    let answer = call(
        feed.http
            .post(format!(
                "{}/calendars/{calendar}/events/watch",
                feed.api_base
            ))
            .bearer_auth(feed.token.expose())
            .json(&body),
    )
    .await?;
    let expires_at = answer["expiration"]
        .as_str()
        .and_then(|ms| ms.parse::<i64>().ok())
        .or_else(|| answer["expiration"].as_i64())
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .unwrap_or(now + GOOGLE_CHANNEL_TTL);
    let channel = PushChannel {
        id: channel_id,
        resource_id: answer["resourceId"].as_str().map(str::to_owned),
        expires_at,
        renew: false,
    };
    record(app, conn, &channel, &token).await?;
    if let Some(old) = &conn.push {
        stop_google(feed, old).await;
    }
    Ok(())
}

async fn renew_graph(
    app: &App,
    conn: &Connection,
    feed: &GraphFeed,
    base: &str,
    now: DateTime<Utc>,
) -> Result<(), ProviderError> {
    let expiration =
        (now + GRAPH_SUBSCRIPTION_TTL).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    if let Some(old) = &conn.push {
        // Extending keeps the subscription (and its clientState); a gone one is created anew.
        let renewed = exchange(
            feed.http
                .patch(format!("{}/subscriptions/{}", feed.api_base, old.id))
                .bearer_auth(feed.token.expose())
                .json(&json!({ "expirationDateTime": expiration })),
        )
        .await?;
        match renewed {
            (status, _, body) if status.is_success() => {
                let answer: Value = serde_json::from_str(&body).unwrap_or_default();
                let expires_at = graph_expiry(&answer).unwrap_or(now + GRAPH_SUBSCRIPTION_TTL);
                let channel = PushChannel {
                    expires_at,
                    renew: false,
                    ..old.clone()
                };
                return app
                    .store
                    .set_push_channel(conn, &channel)
                    .await
                    .map_err(|e| ProviderError::Unavailable(e.to_string()));
            }
            (status, _, _) if status.as_u16() == 404 => {}
            (status, headers, body) => return Err(status_error(status, &headers, &body)),
        }
    }
    let client_state = ids::new_secret_token();
    let answer = call(
        feed.http
            .post(format!("{}/subscriptions", feed.api_base))
            .bearer_auth(feed.token.expose())
            .json(&json!({
                "changeType": "created,updated,deleted",
                "notificationUrl": address(base, Provider::Microsoft),
                "lifecycleNotificationUrl": format!("{}/lifecycle", address(base, Provider::Microsoft)),
                "resource": format!("me/calendars/{}/events", conn.calendar_id),
                "expirationDateTime": expiration,
                "clientState": client_state,
            })),
    )
    .await?;
    let id = answer["id"]
        .as_str()
        .ok_or_else(|| ProviderError::Protocol("subscription without id".into()))?;
    let channel = PushChannel {
        id: id.to_owned(),
        resource_id: None,
        expires_at: graph_expiry(&answer).unwrap_or(now + GRAPH_SUBSCRIPTION_TTL),
        renew: false,
    };
    record(app, conn, &channel, &client_state).await
}

fn graph_expiry(answer: &Value) -> Option<DateTime<Utc>> {
    answer["expirationDateTime"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.to_utc())
}

async fn record(
    app: &App,
    conn: &Connection,
    channel: &PushChannel,
    secret: &str,
) -> Result<(), ProviderError> {
    let record = ChannelRecord {
        channel_id: channel.id.clone(),
        provider: conn.provider,
        user_id: conn.user_id.clone(),
        connection_id: conn.id.clone(),
        secret_hash: ids::sha256_hex(secret),
        expires_at: channel.expires_at,
    };
    app.store
        .put_push_channel(&record, channel, conn.push.as_ref().map(|c| c.id.as_str()))
        .await
        .map_err(|e| ProviderError::Unavailable(e.to_string()))
}

async fn call(request: reqwest::RequestBuilder) -> Result<Value, ProviderError> {
    let (status, headers, body) = exchange(request).await?;
    if !status.is_success() {
        return Err(status_error(status, &headers, &body));
    }
    serde_json::from_str(&body).map_err(|e| ProviderError::Protocol(e.to_string()))
}

async fn stop_google(feed: &GoogleFeed, channel: &PushChannel) {
    let result = exchange(
        feed.http
            .post(format!("{}/channels/stop", feed.api_base))
            .bearer_auth(feed.token.expose())
            .json(&json!({ "id": channel.id, "resourceId": channel.resource_id })),
    )
    .await;
    match result {
        Ok((status, _, _)) if status.is_success() || status.as_u16() == 404 => {}
        Ok((status, _, _)) => {
            tracing::warn!(channel = %channel.id, %status, "channel not stopped; it ends at its expiry")
        }
        Err(e) => {
            tracing::warn!(channel = %channel.id, error = %e, "channel not stopped; it ends at its expiry")
        }
    }
}

async fn delete_graph(feed: &GraphFeed, channel: &PushChannel) {
    let result = exchange(
        feed.http
            .delete(format!("{}/subscriptions/{}", feed.api_base, channel.id))
            .bearer_auth(feed.token.expose()),
    )
    .await;
    match result {
        Ok((status, _, _)) if status.is_success() || status.as_u16() == 404 => {}
        Ok((status, _, _)) => {
            tracing::warn!(subscription = %channel.id, %status, "subscription not deleted; it ends at its expiry")
        }
        Err(e) => {
            tracing::warn!(subscription = %channel.id, error = %e, "subscription not deleted; it ends at its expiry")
        }
    }
}

/// Stops a calendar's channel at its provider (best effort: an unreachable provider lets it
/// run out) and forgets it, so its notifications are refused from now on.
pub async fn retire(app: &App, conn: &Connection) {
    let Some(channel) = &conn.push else {
        return;
    };
    match Feed::open(app, conn).await {
        Ok(Feed::Google(feed)) => stop_google(&feed, channel).await,
        Ok(Feed::Microsoft(feed)) => delete_graph(&feed, channel).await,
        Ok(Feed::CalDav(_)) => {}
        Err(e) => {
            tracing::warn!(connection = %conn.id, error = %e, "channel not stopped; it ends at its expiry")
        }
    }
    if let Err(e) = app
        .store
        .drop_push_channel(&conn.user_id, &conn.id, &channel.id)
        .await
    {
        tracing::warn!(connection = %conn.id, error = %e, "channel record not removed");
    }
}
