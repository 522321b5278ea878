//! Sparse, sharded indexes of things that expire, so cleanup finds them without a scan (TTL
//! deletes lazily, and the local emulator never does): `byExpiry` on the Users table (sessions,
//! OAuth states) and `byPurge` on the Events table (events soft-deleted 30 days ago).

use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};

use super::{n, s, Store, StoreError, StoreResult};

/// Shards per kind: spreads the writes of many logins over partitions.
pub const EXPIRY_SHARDS: u32 = 4;

pub(crate) fn expiry_key(kind: &str, hash: &str) -> String {
    let shard = u32::from_str_radix(&hash[..hash.len().min(4)], 16).unwrap_or(0) % EXPIRY_SHARDS;
    format!("{kind}#{shard}")
}

/// Where one kind of expiring item is indexed.
struct Due<'a> {
    table: &'a str,
    index: &'a str,
    partition: &'a str,
    sort: &'a str,
    kind: &'a str,
}

impl Store {
    /// Deletes up to `limit` items of `kind` ("SESSION" or "OAUTH") that expired before `now`.
    /// Returns how many were deleted.
    pub async fn delete_expired(
        &self,
        kind: &str,
        now_epoch: i64,
        limit: usize,
    ) -> StoreResult<usize> {
        let due = Due {
            table: &self.users,
            index: "byExpiry",
            partition: "expiryPk",
            sort: "expiresAt",
            kind,
        };
        self.delete_due(&due, now_epoch, limit).await
    }

    /// Hard-deletes up to `limit` events soft-deleted long enough ago (`purgeAt <= now`). The
    /// calendars' event counts do not move: the soft deletion already took them off.
    pub async fn purge_deleted_events(&self, now_epoch: i64, limit: usize) -> StoreResult<usize> {
        let due = Due {
            table: &self.events,
            index: "byPurge",
            partition: "purgePk",
            sort: "purgeAt",
            kind: "PURGE",
        };
        self.delete_due(&due, now_epoch, limit).await
    }

    async fn delete_due(&self, due: &Due<'_>, now_epoch: i64, limit: usize) -> StoreResult<usize> {
        let mut deleted = 0;
        for shard in 0..EXPIRY_SHARDS {
            let mut start = None;
            loop {
                let page = self
                    .ddb
                    .query()
                    .table_name(due.table)
                    .index_name(due.index)
                    .key_condition_expression(format!(
                        "{} = :pk AND {} <= :now",
                        due.partition, due.sort
                    ))
                    .expression_attribute_values(":pk", s(format!("{}#{shard}", due.kind)))
                    .expression_attribute_values(":now", n(now_epoch))
                    .limit(25)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(StoreError::from_sdk)?;
                self.stats
                    .read(u64::try_from(page.scanned_count).unwrap_or(0));
                let deletes = page
                    .items
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|item| {
                        let key = [
                            ("pk", item.get("pk")?.clone()),
                            ("sk", item.get("sk")?.clone()),
                        ];
                        let delete = DeleteRequest::builder()
                            .set_key(Some(
                                key.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                            ))
                            .build()
                            .ok()?;
                        Some(WriteRequest::builder().delete_request(delete).build())
                    })
                    .collect::<Vec<_>>();
                deleted += deletes.len();
                self.write_batch(due.table, deletes).await?;
                start = page.last_evaluated_key;
                if start.is_none() || deleted >= limit {
                    break;
                }
            }
        }
        Ok(deleted)
    }

    /// Users whose erasure began and is not finished (at most `limit`).
    pub async fn erasures_due(&self, now_epoch: i64, limit: usize) -> StoreResult<Vec<String>> {
        let mut users = Vec::new();
        for shard in 0..EXPIRY_SHARDS {
            let query = self
                .ddb
                .query()
                .table_name(&self.users)
                .index_name("byExpiry")
                .key_condition_expression("expiryPk = :pk AND expiresAt <= :now")
                .expression_attribute_values(":pk", s(format!("ERASE#{shard}")))
                .expression_attribute_values(":now", n(now_epoch));
            let (items, _) = self.query_up_to(query, limit - users.len()).await?;
            users.extend(items.iter().filter_map(|item| {
                item.get("pk")?
                    .as_s()
                    .ok()?
                    .strip_prefix("ERASING#")
                    .map(str::to_owned)
            }));
            if users.len() >= limit {
                break;
            }
        }
        Ok(users)
    }

    /// Forgets an erasure mark whose user is gone already.
    pub async fn forget_erasure(&self, user_id: &str) -> StoreResult<()> {
        self.stats.write();
        self.ddb
            .delete_item()
            .table_name(&self.users)
            .key("pk", s(format!("ERASING#{user_id}")))
            .key("sk", s("ERASING"))
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        Ok(())
    }
}
