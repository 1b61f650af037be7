//! The read-model store: buckets of keys with revisions, compare-and-set writes, and a watch
//! that delivers the current value of every key and then each change in order.

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

use crate::{BoxError, Bucket, Key};

/// One stored value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its key.
    pub key: Key,
    /// Its value; opaque to the store.
    pub value: Bytes,
    /// The bucket revision of the write that produced it. Revisions grow strictly within a
    /// bucket, so a reader can drop any change older than what it holds.
    pub revision: u64,
}

/// The precondition of a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Write whatever is there.
    Any,
    /// Write only if the key has no live value.
    Absent,
    /// Write only if the key's live value has exactly this revision.
    Revision(u64),
}

/// One change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// A key now holds this entry.
    Put(Entry),
    /// A key was deleted at this revision.
    Deleted {
        /// The key.
        key: Key,
        /// The revision of the delete.
        revision: u64,
    },
    /// Every key's value as of the watch's start has been delivered; what follows is live.
    /// Sent exactly once per watch.
    CaughtUp,
}

/// Why a read-model operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The write's precondition did not hold.
    #[error("{bucket}/{key}: precondition {expected:?} failed (current revision {actual:?})")]
    Conflict {
        /// The bucket.
        bucket: Bucket,
        /// The key.
        key: Key,
        /// The precondition.
        expected: Expect,
        /// The live revision, if any and if the store says.
        actual: Option<u64>,
    },
    /// The bucket does not exist; call `ensure_bucket` first.
    #[error("read-model bucket {0} does not exist")]
    NoSuchBucket(Bucket),
    /// The value is larger than the backend accepts.
    #[error("{bucket}/{key}: value of {size} bytes is too large")]
    TooLarge {
        /// The bucket.
        bucket: Bucket,
        /// The key.
        key: Key,
        /// Its size.
        size: usize,
    },
    /// A stored entry could not be read back.
    #[error("{bucket}: corrupt entry: {reason}")]
    Corrupt {
        /// The bucket.
        bucket: Bucket,
        /// What is wrong.
        reason: String,
    },
    /// The store could not be reached or failed.
    #[error("read-model store unavailable: {context}")]
    Unavailable {
        /// What was being done.
        context: String,
        /// What the backend said.
        #[source]
        source: BoxError,
    },
}

/// Watch output; ends only on error or when the store shuts down.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, KvError>> + Send>>;

/// Largest read-model value a backend accepts.
pub const MAX_VALUE_BYTES: usize = 512 * 1024;

/// The read-model store.
///
/// Contract (proven for every backend by `tests/contract`):
/// - `put` and `delete` honour `Expect`; of concurrent writers expecting the same revision
///   exactly one wins, the others get `KvError::Conflict`.
/// - A delete of a key that has no live value is not an error under `Expect::Any`.
/// - `watch` first yields the state as of its start: applying what it delivers before
///   `CaughtUp` in order leaves every key with its value as of the watch's start (a `Put`
///   each; on a cluster a lagging node may deliver an older value of a key first, always in
///   revision order; it may also yield `Deleted` for keys deleted before the start). Then it
///   yields `CaughtUp` once, then every later change in revision order.
#[async_trait]
pub trait ReadModelStore: Send + Sync + 'static {
    /// Creates the bucket if it does not exist yet. Idempotent.
    async fn ensure_bucket(&self, bucket: &Bucket) -> Result<(), KvError>;

    /// The live value of a key.
    async fn get(&self, bucket: &Bucket, key: &Key) -> Result<Option<Entry>, KvError>;

    /// Writes a value; returns the new revision.
    async fn put(
        &self,
        bucket: &Bucket,
        key: &Key,
        value: Bytes,
        expect: Expect,
    ) -> Result<u64, KvError>;

    /// Writes several values unconditionally (`Expect::Any` each), in order; returns the
    /// revision of the last. A backend may make them durable together (one transaction)
    /// rather than one by one; watchers see each as its own `Put`. The default writes them
    /// one at a time. Fails on the first refused value; earlier ones may be written.
    async fn put_many(&self, bucket: &Bucket, entries: Vec<(Key, Bytes)>) -> Result<u64, KvError> {
        let mut last = 0;
        for (key, value) in entries {
            last = self.put(bucket, &key, value, Expect::Any).await?;
        }
        Ok(last)
    }

    /// Deletes a key.
    async fn delete(&self, bucket: &Bucket, key: &Key, expect: Expect) -> Result<(), KvError>;

    /// Live keys equal to or under `prefix` (token boundary), or every key when `None`;
    /// sorted.
    async fn keys(&self, bucket: &Bucket, prefix: Option<&Key>) -> Result<Vec<Key>, KvError>;

    /// Current values, then `CaughtUp`, then live changes.
    async fn watch(&self, bucket: &Bucket) -> Result<WatchStream, KvError>;

    /// The bucket's newest revision (of a put or a delete; 0 when it has none), as the store
    /// holds it now: a watch that has delivered this revision has seen every change up to
    /// this moment. Lets a watcher tell a watch that has stalled without an error.
    async fn last_revision(&self, bucket: &Bucket) -> Result<u64, KvError>;
}
