//! Audit table: `USER#<id>` / `<ULID>`. ULIDs sort by time, so a reverse query is newest first.
//! Entries expire (TTL `expiresAt`) after the retention period.

use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use chrono::Duration;

use super::{from_item, n, s, to_item, Item, Store, StoreError, StoreResult};
use crate::model::AuditEntry;

const RETENTION_DAYS: i64 = 400;

pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// The sort key to continue after, when there are more entries.
    pub next: Option<String>,
}

impl Store {
    fn audit_item(&self, entry: &AuditEntry) -> StoreResult<Item> {
        let mut item = to_item(
            entry,
            &[
                ("pk", format!("USER#{}", entry.user_id)),
                ("sk", entry.id.clone()),
            ],
        )?;
        let expires = entry.created_at + Duration::days(RETENTION_DAYS);
        item.insert("expiresAt".into(), n(expires.timestamp()));
        Ok(item)
    }

    /// The audit entry as one item of a transaction, so it is written with what it records.
    pub(crate) fn audit_put(&self, entry: &AuditEntry) -> StoreResult<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.audit)
            .set_item(Some(self.audit_item(entry)?))
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Records an entry on its own (for events with nothing else to write, like a failed login).
    pub async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        self.stats.write();
        self.ddb
            .put_item()
            .table_name(&self.audit)
            .set_item(Some(self.audit_item(entry)?))
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        Ok(())
    }

    /// A page of the user's entries, newest first, continuing before `after` when given.
    pub async fn audit_log(
        &self,
        user_id: &str,
        limit: i32,
        after: Option<&str>,
    ) -> StoreResult<AuditPage> {
        let mut query = self
            .ddb
            .query()
            .table_name(&self.audit)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(format!("USER#{user_id}")))
            .scan_index_forward(false)
            .limit(limit);
        if let Some(after) = after {
            query = query
                .exclusive_start_key("pk", s(format!("USER#{user_id}")))
                .exclusive_start_key("sk", s(after));
        }
        let out = query.send().await.map_err(StoreError::from_sdk)?;
        self.stats
            .read(u64::try_from(out.scanned_count).unwrap_or(0));
        let entries = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_item)
            .collect::<StoreResult<Vec<AuditEntry>>>()?;
        let next = out
            .last_evaluated_key
            .and_then(|k| k.get("sk").and_then(|v| v.as_s().ok()).cloned());
        Ok(AuditPage { entries, next })
    }
}
