//! Read-your-writes: a write returns only once the projector has applied what it appended.

use std::time::Duration;

use portcullis_store::{Bucket, Key, ReadModelStore};

use super::ControlError;

/// First pause between two looks at the checkpoint; doubled up to `MAX_POLL`.
const FIRST_POLL: Duration = Duration::from_millis(2);
/// Longest pause between two looks at the checkpoint.
const MAX_POLL: Duration = Duration::from_millis(50);

/// The projector's checkpoint value (`{"applied_through": n}`).
#[derive(serde::Deserialize)]
struct Checkpoint {
    applied_through: u64,
}

/// Why the read models did not catch up.
#[derive(Debug, thiserror::Error)]
#[error(
    "read models did not reach log sequence {sequence} within {timeout:?} (at {applied_through})"
)]
pub struct NotCaughtUp {
    /// The sequence waited for.
    pub sequence: u64,
    /// How far the projector got.
    pub applied_through: u64,
    /// How long was waited.
    pub timeout: Duration,
}

/// Waits until the projector checkpoint `bucket`/`key` has reached `sequence`, or
/// `timeout` passed (`Unavailable`). Sequence 0 returns at once. A missing checkpoint counts
/// as 0; an unreadable one is `Unavailable`.
pub async fn wait_for_projection(
    kv: &dyn ReadModelStore,
    bucket: &Bucket,
    key: &Key,
    sequence: u64,
    timeout: Duration,
) -> Result<(), ControlError> {
    if sequence == 0 {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = FIRST_POLL;
    loop {
        let applied_through = match kv.get(bucket, key).await {
            Ok(Some(entry)) => {
                serde_json::from_slice::<Checkpoint>(&entry.value)
                    .map_err(ControlError::unavailable)?
                    .applied_through
            }
            Ok(None) => 0,
            Err(portcullis_store::KvError::NoSuchBucket(_)) => 0,
            Err(error) => return Err(ControlError::unavailable(error)),
        };
        if applied_through >= sequence {
            return Ok(());
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            tracing::warn!(
                sequence,
                applied_through,
                "Read models did not catch up with a write in time."
            );
            return Err(ControlError::unavailable(NotCaughtUp {
                sequence,
                applied_through,
                timeout,
            }));
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(MAX_POLL);
    }
}
