//! ICS feeds in the Users table: `FEED#<sha256(token)>` / `FEED`. The token is the credential of
//! the feed URL, so only its hash is stored; the hash is also the feed's id, for revocation.

use super::{from_item, s, to_item, Store, StoreError, StoreResult};

const FEED: &str = "FEED";

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Feed {
    pub user_id: String,
    pub name: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl Store {
    pub async fn create_feed(&self, token_hash: &str, feed: &Feed) -> StoreResult<()> {
        let item = to_item(
            feed,
            &[("pk", format!("FEED#{token_hash}")), ("sk", FEED.into())],
        )?;
        self.stats.write();
        self.ddb
            .put_item()
            .table_name(&self.users)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        Ok(())
    }

    pub async fn feed(&self, token_hash: &str) -> StoreResult<Option<Feed>> {
        self.get(&self.users, format!("FEED#{token_hash}"), FEED.into())
            .await?
            .map(from_item)
            .transpose()
    }

    /// Revokes a feed of this user; `ConditionFailed` when there is no such feed of theirs.
    pub async fn delete_feed(&self, user_id: &str, token_hash: &str) -> StoreResult<()> {
        self.stats.write();
        self.ddb
            .delete_item()
            .table_name(&self.users)
            .key("pk", s(format!("FEED#{token_hash}")))
            .key("sk", s(FEED))
            .condition_expression("userId = :user")
            .expression_attribute_values(":user", s(user_id))
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        Ok(())
    }
}
