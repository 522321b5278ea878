//! Password-reset tokens in the Users table: `RESET#<sha256(token)>` / `RESET`, TTL `expiresAt`.
//! Only the hash is stored; a token is consumed by ONE conditional update, so it works once.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::{n, s, Store, StoreError, StoreResult};

const RESET: &str = "RESET";

fn reset_pk(token_hash: &str) -> String {
    format!("RESET#{token_hash}")
}

impl Store {
    pub async fn create_reset_token(
        &self,
        token_hash: &str,
        user_id: &str,
        expires_epoch: i64,
    ) -> StoreResult<()> {
        self.stats.write();
        self.ddb
            .put_item()
            .table_name(&self.users)
            .item("pk", s(reset_pk(token_hash)))
            .item("sk", s(RESET))
            .item("userId", s(user_id))
            .item("expiresAt", n(expires_epoch))
            .item("consumed", AttributeValue::Bool(false))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        Ok(())
    }

    /// The user of an unused, unexpired token, which is now used; `None` for any other token.
    pub async fn consume_reset_token(
        &self,
        token_hash: &str,
        now_epoch: i64,
    ) -> StoreResult<Option<String>> {
        self.stats.write();
        let result = self
            .ddb
            .update_item()
            .table_name(&self.users)
            .key("pk", s(reset_pk(token_hash)))
            .key("sk", s(RESET))
            .condition_expression(
                "attribute_exists(pk) AND #consumed = :false AND expiresAt > :now",
            )
            .update_expression("SET #consumed = :true, expiresAt = :now")
            .expression_attribute_names("#consumed", "consumed")
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":now", n(now_epoch))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(out
                .attributes
                .and_then(|a| a.get("userId").and_then(|v| v.as_s().ok()).cloned())),
            Err(err) => match StoreError::from_sdk(err) {
                StoreError::ConditionFailed => Ok(None),
                other => Err(other),
            },
        }
    }
}
