//! Erasing an account (decisions 47, 54): every item of the user in every table, resumable.
//! `DELETE /v1/me` erases for a few seconds and answers; an account too big for that is
//! finished by the cleanup job, which finds it by its erasure mark.

use std::time::{Duration, Instant};

use crate::app::App;
use crate::error::ApiError;
use crate::ids;
use crate::model::{AuditEntry, User};
use crate::store::Erased;

/// How long one cleanup run erases (the function's timeout is 120 s).
pub const PER_CLEANUP_RUN: Duration = Duration::from_secs(80);

/// Erases until `deadline`; when it finishes, the one anonymised record of the erasure is
/// written (no id, no e-mail: a hash of the id).
pub async fn erase(
    app: &App,
    user: &User,
    deadline: Instant,
    by: &str,
) -> Result<Erased, ApiError> {
    let erased = app.store.erase_user(user, deadline).await?;
    if erased.done {
        let hash = ids::sha256_hex(&user.id);
        let record = AuditEntry::new(
            &format!("~deleted-users#{}", &hash[..1]),
            "USER_DELETED",
            "USER",
            None,
        )
        .with_metadata(serde_json::json!({ "userIdHash": hash, "finishedBy": by }));
        app.store.append_audit(&record).await?;
        tracing::info!(items = erased.items, by, "account erased");
    } else {
        tracing::info!(items = erased.items, by, "account erasure continues");
    }
    Ok(erased)
}

/// What a cleanup run did to unfinished erasures.
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErasureReport {
    pub finished: usize,
    pub continuing: usize,
}

/// Continues the erasures that requests left unfinished, oldest first, within one run's time.
pub async fn continue_due(app: &App, now_epoch: i64) -> Result<ErasureReport, ApiError> {
    let deadline = Instant::now() + PER_CLEANUP_RUN;
    let mut report = ErasureReport::default();
    for user_id in app.store.erasures_due(now_epoch, 10).await? {
        if Instant::now() >= deadline {
            break;
        }
        match app.store.user(&user_id).await? {
            Some(user) => {
                if erase(app, &user, deadline, "cleanup").await?.done {
                    report.finished += 1;
                } else {
                    report.continuing += 1;
                }
            }
            None => app.store.forget_erasure(&user_id).await?,
        }
    }
    Ok(report)
}
