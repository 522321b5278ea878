//! A user's whole footprint across the five tables: read for the data export, deleted for the
//! account's erasure. Every item of a user is under a partition this module can name from the
//! user: `USER#<id>` (Users, Connections, Audit, Changes), `CONN#<connectionId>` (Events) for each of the
//! user's calendars, and the items those point to (sessions, feeds, the e-mail claim).

use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};

use super::{from_item, s, Store, StoreError, StoreResult};
use crate::model::{AuditEntry, Event, User};

/// What an erasure deleted, by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Erased {
    pub calendars: usize,
    pub events: usize,
    pub audit_entries: usize,
    pub sessions: usize,
    pub feeds: usize,
    /// Every item deleted, all tables.
    pub items: usize,
}

type Key = (String, String);

pub(crate) fn delete_request(pk: String, sk: String) -> StoreResult<WriteRequest> {
    let delete = DeleteRequest::builder()
        .key("pk", s(pk))
        .key("sk", s(sk))
        .build()
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok(WriteRequest::builder().delete_request(delete).build())
}

impl Store {
    /// The keys of every item in partition `pk` of `table`.
    async fn partition_keys(&self, table: &str, pk: &str) -> StoreResult<Vec<Key>> {
        let query = self
            .partition_query(table, pk, None)
            .projection_expression("pk, sk");
        Ok(self
            .query_all(query)
            .await?
            .into_iter()
            .filter_map(|item| {
                let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
                Some((text("pk")?, text("sk")?))
            })
            .collect())
    }

    async fn delete_keys(&self, table: &str, keys: Vec<Key>) -> StoreResult<usize> {
        let count = keys.len();
        let requests = keys
            .into_iter()
            .map(|(pk, sk)| delete_request(pk, sk))
            .collect::<StoreResult<Vec<_>>>()?;
        self.write_batch(table, requests).await?;
        Ok(count)
    }

    /// The stored event items of a calendar (events, series, exceptions, soft-deleted ones), at
    /// most `max`; whether there were more. Reading stops there, so a huge calendar costs no more
    /// than the cap.
    pub async fn calendar_events(
        &self,
        connection_id: &str,
        max: usize,
    ) -> StoreResult<(Vec<Event>, bool)> {
        let query =
            self.partition_query(&self.events, format!("CONN#{connection_id}"), Some("EVT#"));
        let (items, more) = self.query_up_to(query, max).await?;
        let events = items
            .into_iter()
            .map(from_item)
            .collect::<StoreResult<_>>()?;
        Ok((events, more))
    }

    /// The user's whole audit log, oldest first.
    pub async fn audit_entries(&self, user_id: &str) -> StoreResult<Vec<AuditEntry>> {
        self.partition_items(&self.audit, format!("USER#{user_id}"), None)
            .await
    }

    /// Deletes every item of the user in every table. Idempotent: a second run after a failure
    /// deletes what is left. The profile and the e-mail claim go last, so until then the account
    /// still exists and the erasure can be asked for again.
    pub async fn erase_user(&self, user: &User) -> StoreResult<Erased> {
        let user_pk = format!("USER#{}", user.id);
        let mut erased = Erased::default();

        let connection_keys = self.partition_keys(&self.connections, &user_pk).await?;
        for (_, sk) in &connection_keys {
            if let Some(connection_id) = sk.strip_prefix("CONN#") {
                erased.calendars += 1;
                let keys = self
                    .partition_keys(&self.events, &format!("CONN#{connection_id}"))
                    .await?;
                erased.events += keys.iter().filter(|(_, sk)| sk.starts_with("EVT#")).count();
                erased.items += self.delete_keys(&self.events, keys).await?;
            }
        }
        erased.items += self.delete_keys(&self.connections, connection_keys).await?;

        let audit_keys = self.partition_keys(&self.audit, &user_pk).await?;
        erased.audit_entries = audit_keys.len();
        erased.items += self.delete_keys(&self.audit, audit_keys).await?;

        let change_keys = self.partition_keys(&self.changes, &user_pk).await?;
        erased.items += self.delete_keys(&self.changes, change_keys).await?;

        let user_keys = self.partition_keys(&self.users, &user_pk).await?;
        let mut pointed = Vec::new();
        for (_, sk) in &user_keys {
            if let Some(hash) = sk.strip_prefix("SESSION#") {
                erased.sessions += 1;
                pointed.push((format!("SESSION#{hash}"), "SESSION".to_owned()));
            } else if let Some(hash) = sk.strip_prefix("FEED#") {
                erased.feeds += 1;
                pointed.push((format!("FEED#{hash}"), "FEED".to_owned()));
            }
        }
        erased.items += self.delete_keys(&self.users, pointed).await?;
        let (profile, rest): (Vec<Key>, Vec<Key>) =
            user_keys.into_iter().partition(|(_, sk)| sk == "PROFILE");
        erased.items += self.delete_keys(&self.users, rest).await?;
        let claim = (format!("EMAIL#{}", user.email), "EMAIL".to_owned());
        erased.items += self
            .delete_keys(&self.users, [vec![claim], profile].concat())
            .await?;
        Ok(erased)
    }
}
