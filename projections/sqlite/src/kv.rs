//! `ReadModelStore` on the `buckets` and `kv` tables: compare-and-set writes with per-bucket
//! revisions, prefix listing, and gap-free watches.
//!
//! Owns: the write transactions (precondition, next bucket revision, upsert or delete, then
//! the live change to watchers) and how a watch joins its snapshot to the live changes. A
//! watch replays its snapshot a page at a time from a blocking thread, so a large bucket is
//! never held in memory whole (a data plane's replica of 100,000 sessions would otherwise
//! hold every stored value twice while it starts).
//!
//! Must not: notify a change outside the writer mutex or before its commit, let a lagging
//! watcher skip changes silently, or skip a row it cannot decode.

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use portcullis_store::{
    BoxError, Bucket, Entry, Expect, Key, KvError, MAX_VALUE_BYTES, ReadModelStore, WatchEvent,
    WatchStream,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::connections::Writer;
use crate::{Inner, SqliteStore, columns};

/// Live changes a watcher may fall behind by before its watch ends with `Unavailable`. A
/// change's value is freed once every watcher has received it, so this bounds memory only for
/// watchers that stop reading. Small under unit tests, so they can make a watcher lag.
const WATCH_BUFFER: usize = if cfg!(test) { 8 } else { 1024 };

/// Entries per page of a watch's replay; a replay holds at most `REPLAY_PAGES_AHEAD` pages
/// beyond the one its watcher is reading. Small under unit tests, so replays span pages.
const REPLAY_PAGE: usize = if cfg!(test) { 3 } else { 256 };
const REPLAY_PAGES_AHEAD: usize = 2;

/// What the replaying thread sends a watcher.
enum Replay {
    /// The next entries, in revision order.
    Page(Vec<Entry>),
    /// Every entry of the snapshot was sent.
    Done,
    /// Reading the snapshot failed; the watch ends with this error.
    Failed(KvError),
}

/// Where a watch stream is.
enum WatchState {
    /// Replaying the snapshot; then the live changes after `caught_up_at`.
    Replaying {
        pages: mpsc::Receiver<Replay>,
        changes: broadcast::Receiver<Change>,
        caught_up_at: u64,
    },
    /// Relaying live changes after `caught_up_at`.
    Live {
        changes: broadcast::Receiver<Change>,
        caught_up_at: u64,
    },
}

/// One committed change, as sent to the watchers of its bucket.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    /// The bucket revision of the change.
    revision: u64,
    /// What a watcher yields for it: a `Put` or a `Deleted`.
    event: WatchEvent,
}

/// A `KvError::Unavailable` maker for `map_err`.
fn unavailable<E: Into<BoxError>>(context: &'static str) -> impl FnOnce(E) -> KvError {
    move |source| KvError::Unavailable {
        context: context.to_owned(),
        source: source.into(),
    }
}

#[async_trait]
impl ReadModelStore for SqliteStore {
    #[tracing::instrument(name = "store.sqlite.ensure_bucket", level = "debug", skip_all, fields(%bucket))]
    async fn ensure_bucket(&self, bucket: &Bucket) -> Result<(), KvError> {
        let bucket = bucket.clone();
        self.blocking(
            move |inner| inner.ensure_bucket(&bucket),
            unavailable("creating a bucket"),
        )
        .await
    }

    #[tracing::instrument(name = "store.sqlite.get", level = "debug", skip_all, fields(%bucket, %key))]
    async fn get(&self, bucket: &Bucket, key: &Key) -> Result<Option<Entry>, KvError> {
        let (bucket, key) = (bucket.clone(), key.clone());
        self.blocking(
            move |inner| inner.get(&bucket, &key),
            unavailable("reading a key"),
        )
        .await
    }

    async fn last_revision(&self, bucket: &Bucket) -> Result<u64, KvError> {
        let bucket = bucket.clone();
        self.blocking(
            move |inner| inner.last_revision(&bucket),
            unavailable("reading a bucket"),
        )
        .await
    }

    #[tracing::instrument(name = "store.sqlite.put", level = "debug", skip_all, fields(%bucket, %key, ?expect))]
    async fn put(
        &self,
        bucket: &Bucket,
        key: &Key,
        value: Bytes,
        expect: Expect,
    ) -> Result<u64, KvError> {
        if value.len() > MAX_VALUE_BYTES {
            return Err(KvError::TooLarge {
                bucket: bucket.clone(),
                key: key.clone(),
                size: value.len(),
            });
        }
        let (bucket, key) = (bucket.clone(), key.clone());
        self.blocking(
            move |inner| inner.put(&bucket, &key, value, expect),
            unavailable("writing a key"),
        )
        .await
    }

    #[tracing::instrument(name = "store.sqlite.put_many", level = "debug", skip_all, fields(%bucket, count = entries.len()))]
    async fn put_many(&self, bucket: &Bucket, entries: Vec<(Key, Bytes)>) -> Result<u64, KvError> {
        if let Some((key, value)) = entries.iter().find(|(_, v)| v.len() > MAX_VALUE_BYTES) {
            return Err(KvError::TooLarge {
                bucket: bucket.clone(),
                key: key.clone(),
                size: value.len(),
            });
        }
        let bucket = bucket.clone();
        self.blocking(
            move |inner| inner.put_many(&bucket, entries),
            unavailable("writing keys"),
        )
        .await
    }

    #[tracing::instrument(name = "store.sqlite.delete", level = "debug", skip_all, fields(%bucket, %key, ?expect))]
    async fn delete(&self, bucket: &Bucket, key: &Key, expect: Expect) -> Result<(), KvError> {
        let (bucket, key) = (bucket.clone(), key.clone());
        self.blocking(
            move |inner| inner.delete(&bucket, &key, expect),
            unavailable("deleting a key"),
        )
        .await
    }

    #[tracing::instrument(name = "store.sqlite.keys", level = "debug", skip_all, fields(%bucket))]
    async fn keys(&self, bucket: &Bucket, prefix: Option<&Key>) -> Result<Vec<Key>, KvError> {
        let (bucket, prefix) = (bucket.clone(), prefix.cloned());
        self.blocking(
            move |inner| inner.keys(&bucket, prefix.as_ref()),
            unavailable("listing keys"),
        )
        .await
    }

    #[tracing::instrument(name = "store.sqlite.watch", level = "debug", skip_all, fields(%bucket))]
    async fn watch(&self, bucket: &Bucket) -> Result<WatchStream, KvError> {
        let (started, start) = oneshot::channel();
        let (sender, pages) = mpsc::channel(REPLAY_PAGES_AHEAD);
        let inner = self.inner.clone();
        let job_bucket = bucket.clone();
        let span = tracing::Span::current();
        // Detached: it ends after the last page, or as soon as the watcher is dropped.
        drop(tokio::task::spawn_blocking(move || {
            span.in_scope(|| inner.replay_watch(&job_bucket, started, &sender));
        }));
        let (caught_up_at, changes) = start
            .await
            .map_err(unavailable("starting a watch (the replay stopped)"))??;
        let bucket = bucket.clone();
        let state = WatchState::Replaying {
            pages,
            changes,
            caught_up_at,
        };
        let events = futures::stream::unfold(Some(state), move |state| {
            let bucket = bucket.clone();
            async move { next_events(state?, &bucket).await }
        });
        Ok(Box::pin(events.flat_map(futures::stream::iter)))
    }
}

/// The next events of a watch in `state`, and its state after them (`None` once it ended).
async fn next_events(
    state: WatchState,
    bucket: &Bucket,
) -> Option<(Vec<Result<WatchEvent, KvError>>, Option<WatchState>)> {
    match state {
        WatchState::Replaying {
            mut pages,
            changes,
            caught_up_at,
        } => match pages.recv().await {
            Some(Replay::Page(entries)) => Some((
                entries
                    .into_iter()
                    .map(|entry| Ok(WatchEvent::Put(entry)))
                    .collect(),
                Some(WatchState::Replaying {
                    pages,
                    changes,
                    caught_up_at,
                }),
            )),
            Some(Replay::Done) => Some((
                vec![Ok(WatchEvent::CaughtUp)],
                Some(WatchState::Live {
                    changes,
                    caught_up_at,
                }),
            )),
            Some(Replay::Failed(error)) => Some((vec![Err(error)], None)),
            None => Some((
                vec![Err(KvError::Unavailable {
                    context: format!("the replay of bucket {bucket} stopped; watch again"),
                    source: "the replaying thread ended early".into(),
                })],
                None,
            )),
        },
        WatchState::Live {
            changes,
            caught_up_at,
        } => {
            let (event, changes) = next_live_change(changes, bucket, caught_up_at).await?;
            Some((
                vec![event],
                changes.map(|changes| WatchState::Live {
                    changes,
                    caught_up_at,
                }),
            ))
        }
    }
}

/// The next change after `caught_up_at`; after a lag, an error and then the end.
async fn next_live_change(
    mut changes: broadcast::Receiver<Change>,
    bucket: &Bucket,
    caught_up_at: u64,
) -> Option<(
    Result<WatchEvent, KvError>,
    Option<broadcast::Receiver<Change>>,
)> {
    loop {
        match changes.recv().await {
            // Already in the snapshot. Cannot happen (the receiver was registered under the
            // writer mutex together with the snapshot) but costs nothing to guard.
            Ok(change) if change.revision <= caught_up_at => {}
            Ok(change) => return Some((Ok(change.event), Some(changes))),
            Err(broadcast::error::RecvError::Closed) => return None,
            Err(lagged @ broadcast::error::RecvError::Lagged(_)) => {
                tracing::warn!(%bucket, error = %lagged, "Watcher fell behind; ending its watch.");
                let error = KvError::Unavailable {
                    context: format!("watch of bucket {bucket} fell behind; watch again"),
                    source: Box::new(lagged),
                };
                return Some((Err(error), None));
            }
        }
    }
}

/// What a watch starts from: the bucket revision its snapshot is as of, and every change
/// committed after it.
type WatchStart = (u64, broadcast::Receiver<Change>);

impl Inner {
    fn ensure_bucket(&self, bucket: &Bucket) -> Result<(), KvError> {
        let writer = self.lock_writer();
        writer
            .conn
            .execute(
                "INSERT INTO buckets (name, revision) VALUES (?1, 0) ON CONFLICT (name) DO NOTHING",
                [bucket.as_str()],
            )
            .map_err(unavailable("creating a bucket"))?;
        Ok(())
    }

    fn last_revision(&self, bucket: &Bucket) -> Result<u64, KvError> {
        let reader = self
            .readers
            .get()
            .map_err(unavailable("opening a reader"))?;
        bucket_revision(&reader, bucket)
    }

    fn get(&self, bucket: &Bucket, key: &Key) -> Result<Option<Entry>, KvError> {
        let reader = self
            .readers
            .get()
            .map_err(unavailable("opening a reader"))?;
        // Buckets are never removed, so checking it outside a transaction is exact.
        bucket_revision(&reader, bucket)?;
        let row = reader
            .query_row(
                "SELECT value, revision FROM kv WHERE bucket = ?1 AND key = ?2",
                [bucket.as_str(), key.as_str()],
                |row| {
                    Ok(columns::blob(row, 0, "value").and_then(|value| {
                        let revision = columns::unsigned(row, 1, "revision")?;
                        Ok((value, revision))
                    }))
                },
            )
            .optional()
            .map_err(unavailable("reading a key"))?;
        match row {
            None => Ok(None),
            Some(Ok((value, revision))) => Ok(Some(Entry {
                key: key.clone(),
                value,
                revision,
            })),
            Some(Err(reason)) => Err(corrupt(bucket, format!("key {key}: {reason}"))),
        }
    }

    fn put(
        &self,
        bucket: &Bucket,
        key: &Key,
        value: Bytes,
        expect: Expect,
    ) -> Result<u64, KvError> {
        let mut writer = self.lock_writer();
        let Writer { conn, watchers, .. } = &mut *writer;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable("starting a write"))?;
        let last = bucket_revision(&tx, bucket)?;
        let current = key_revision(&tx, bucket, key)?;
        check(bucket, key, expect, current)?;
        let (revision, stored) = next_revision(bucket, last)?;
        tx.execute(
            "UPDATE buckets SET revision = ?2 WHERE name = ?1",
            params![bucket.as_str(), stored],
        )
        .map_err(unavailable("writing a key"))?;
        tx.execute(
            "INSERT INTO kv (bucket, key, value, revision) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (bucket, key) DO UPDATE
             SET value = excluded.value, revision = excluded.revision",
            params![bucket.as_str(), key.as_str(), &value[..], stored],
        )
        .map_err(unavailable("writing a key"))?;
        tx.commit().map_err(unavailable("committing a write"))?;
        let event = WatchEvent::Put(Entry {
            key: key.clone(),
            value,
            revision,
        });
        notify(watchers, bucket, Change { revision, event });
        Ok(revision)
    }

    /// All of `entries` in one transaction (one fsync), each with its own revision.
    fn put_many(&self, bucket: &Bucket, entries: Vec<(Key, Bytes)>) -> Result<u64, KvError> {
        let mut writer = self.lock_writer();
        let Writer { conn, watchers, .. } = &mut *writer;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable("starting a write"))?;
        let mut last = bucket_revision(&tx, bucket)?;
        let mut changes = Vec::with_capacity(entries.len());
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO kv (bucket, key, value, revision) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (bucket, key) DO UPDATE
                     SET value = excluded.value, revision = excluded.revision",
                )
                .map_err(unavailable("writing keys"))?;
            for (key, value) in entries {
                let (revision, stored) = next_revision(bucket, last)?;
                insert
                    .execute(params![bucket.as_str(), key.as_str(), &value[..], stored])
                    .map_err(unavailable("writing keys"))?;
                last = revision;
                changes.push(Change {
                    revision,
                    event: WatchEvent::Put(Entry {
                        key,
                        value,
                        revision,
                    }),
                });
            }
        }
        let stored =
            i64::try_from(last).map_err(|_| corrupt(bucket, "revision overflow".to_owned()))?;
        tx.execute(
            "UPDATE buckets SET revision = ?2 WHERE name = ?1",
            params![bucket.as_str(), stored],
        )
        .map_err(unavailable("writing keys"))?;
        tx.commit().map_err(unavailable("committing a write"))?;
        for change in changes {
            notify(watchers, bucket, change);
        }
        Ok(last)
    }

    /// Deleting a key with no live value writes nothing under `Any` and `Absent` (the
    /// precondition holds and there is nothing to remove) and conflicts under `Revision`.
    fn delete(&self, bucket: &Bucket, key: &Key, expect: Expect) -> Result<(), KvError> {
        let mut writer = self.lock_writer();
        let Writer { conn, watchers, .. } = &mut *writer;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable("starting a delete"))?;
        let last = bucket_revision(&tx, bucket)?;
        let current = key_revision(&tx, bucket, key)?;
        check(bucket, key, expect, current)?;
        if current.is_none() {
            return Ok(());
        }
        let (revision, stored) = next_revision(bucket, last)?;
        tx.execute(
            "UPDATE buckets SET revision = ?2 WHERE name = ?1",
            params![bucket.as_str(), stored],
        )
        .map_err(unavailable("deleting a key"))?;
        tx.execute(
            "DELETE FROM kv WHERE bucket = ?1 AND key = ?2",
            [bucket.as_str(), key.as_str()],
        )
        .map_err(unavailable("deleting a key"))?;
        tx.commit().map_err(unavailable("committing a delete"))?;
        let event = WatchEvent::Deleted {
            key: key.clone(),
            revision,
        };
        notify(watchers, bucket, Change { revision, event });
        Ok(())
    }

    /// Keys equal to `prefix` or under it: every key under `p` lies in `["p.", "p/")`, since
    /// `/` is the byte after `.`. A range, not `LIKE`, so `_` in a key is not a wildcard.
    fn keys(&self, bucket: &Bucket, prefix: Option<&Key>) -> Result<Vec<Key>, KvError> {
        let reader = self
            .readers
            .get()
            .map_err(unavailable("opening a reader"))?;
        bucket_revision(&reader, bucket)?;
        // Two statements rather than one with `?2 IS NULL OR …`, so each reads an index range.
        let (sql, prefix) = match prefix {
            None => ("SELECT key FROM kv WHERE bucket = ?1 ORDER BY key", None),
            Some(prefix) => (
                "SELECT key FROM kv WHERE bucket = ?1
                 AND (key = ?2 OR (key >= ?2 || '.' AND key < ?2 || '/'))
                 ORDER BY key",
                Some(prefix.as_str()),
            ),
        };
        let mut statement = reader
            .prepare_cached(sql)
            .map_err(unavailable("preparing a key listing"))?;
        let mut rows = match prefix {
            None => statement.query([bucket.as_str()]),
            Some(prefix) => statement.query([bucket.as_str(), prefix]),
        }
        .map_err(unavailable("listing keys"))?;
        let mut keys = Vec::new();
        while let Some(row) = rows.next().map_err(unavailable("listing keys"))? {
            let key = columns::text(row, 0, "key").map_err(|reason| corrupt(bucket, reason))?;
            keys.push(Key::new(key).map_err(|e| corrupt(bucket, e.to_string()))?);
        }
        Ok(keys)
    }

    /// Registers for live changes and pins the snapshot under the writer mutex, so the two
    /// meet exactly: the snapshot holds every change up to its revision, the receiver every
    /// change after it; both go to `started`. The entries are then read outside the mutex,
    /// from the pinned snapshot, and sent to `pages` a page at a time (waiting while the
    /// watcher is `REPLAY_PAGES_AHEAD` pages behind), then `Replay::Done`. Stops early when the
    /// watcher is gone.
    fn replay_watch(
        &self,
        bucket: &Bucket,
        started: oneshot::Sender<Result<WatchStart, KvError>>,
        pages: &mpsc::Sender<Replay>,
    ) {
        let mut reader = match self.readers.get() {
            Ok(reader) => reader,
            Err(error) => {
                let _ = started.send(Err(unavailable("opening a reader")(error)));
                return;
            }
        };
        // Deferred: the read snapshot is taken by the first read, below, not by BEGIN.
        let tx = match reader.transaction() {
            Ok(tx) => tx,
            Err(error) => {
                let _ = started.send(Err(unavailable("starting a watch")(error)));
                return;
            }
        };
        let pinned = {
            let mut writer = self.lock_writer();
            bucket_revision(&tx, bucket).map(|revision| {
                let changes = writer
                    .watchers
                    .entry(bucket.clone())
                    .or_insert_with(|| broadcast::channel(WATCH_BUFFER).0)
                    .subscribe();
                (revision, changes)
            })
        };
        let failed = pinned.is_err();
        if started.send(pinned).is_err() || failed {
            return;
        }
        let sent = Self::send_snapshot(&tx, bucket, pages);
        let last = match sent {
            Ok(()) => Replay::Done,
            Err(SendError::Failed(error)) => Replay::Failed(error),
            Err(SendError::WatcherGone) => return,
        };
        let _ = pages.blocking_send(last);
    }

    /// Reads the pinned snapshot and sends it page by page.
    fn send_snapshot(
        tx: &rusqlite::Transaction<'_>,
        bucket: &Bucket,
        pages: &mpsc::Sender<Replay>,
    ) -> Result<(), SendError> {
        let mut statement = tx
            .prepare_cached(
                "SELECT key, value, revision FROM kv WHERE bucket = ?1 ORDER BY revision",
            )
            .map_err(|e| SendError::Failed(unavailable("preparing a watch")(e)))?;
        let mut rows = statement
            .query([bucket.as_str()])
            .map_err(|e| SendError::Failed(unavailable("reading a bucket")(e)))?;
        let mut page = Vec::with_capacity(REPLAY_PAGE);
        while let Some(row) = rows
            .next()
            .map_err(|e| SendError::Failed(unavailable("reading a bucket")(e)))?
        {
            let entry =
                decode_entry(row).map_err(|reason| SendError::Failed(corrupt(bucket, reason)))?;
            page.push(entry);
            if page.len() == REPLAY_PAGE {
                let full = std::mem::replace(&mut page, Vec::with_capacity(REPLAY_PAGE));
                pages
                    .blocking_send(Replay::Page(full))
                    .map_err(|_| SendError::WatcherGone)?;
            }
        }
        if !page.is_empty() {
            pages
                .blocking_send(Replay::Page(page))
                .map_err(|_| SendError::WatcherGone)?;
        }
        Ok(())
    }
}

/// The bucket's last revision, or `NoSuchBucket`.
fn bucket_revision(conn: &Connection, bucket: &Bucket) -> Result<u64, KvError> {
    conn.query_row(
        "SELECT revision FROM buckets WHERE name = ?1",
        [bucket.as_str()],
        |row| Ok(columns::unsigned(row, 0, "bucket revision")),
    )
    .optional()
    .map_err(unavailable("reading a bucket"))?
    .ok_or_else(|| KvError::NoSuchBucket(bucket.clone()))?
    .map_err(|reason| corrupt(bucket, reason))
}

/// The revision of the key's live value, if it has one.
fn key_revision(conn: &Connection, bucket: &Bucket, key: &Key) -> Result<Option<u64>, KvError> {
    conn.query_row(
        "SELECT revision FROM kv WHERE bucket = ?1 AND key = ?2",
        [bucket.as_str(), key.as_str()],
        |row| Ok(columns::unsigned(row, 0, "revision")),
    )
    .optional()
    .map_err(unavailable("reading a key"))?
    .transpose()
    .map_err(|reason| corrupt(bucket, format!("key {key}: {reason}")))
}

/// The revision after `last`, and the same as SQLite stores it.
fn next_revision(bucket: &Bucket, last: u64) -> Result<(u64, i64), KvError> {
    last.checked_add(1)
        .and_then(|next| Some((next, i64::try_from(next).ok()?)))
        .ok_or_else(|| corrupt(bucket, format!("bucket revision {last} cannot grow")))
}

/// Whether `expect` holds for a key whose live revision is `current`.
fn check(bucket: &Bucket, key: &Key, expect: Expect, current: Option<u64>) -> Result<(), KvError> {
    let holds = match expect {
        Expect::Any => true,
        Expect::Absent => current.is_none(),
        Expect::Revision(revision) => current == Some(revision),
    };
    if holds {
        Ok(())
    } else {
        Err(KvError::Conflict {
            bucket: bucket.clone(),
            key: key.clone(),
            expected: expect,
            actual: current,
        })
    }
}

/// Sends a committed change to the bucket's watchers; forgets the sender once none is left.
/// Called with the writer mutex held, right after the commit.
fn notify(
    watchers: &mut std::collections::HashMap<Bucket, broadcast::Sender<Change>>,
    bucket: &Bucket,
    change: Change,
) {
    if let Some(sender) = watchers.get(bucket)
        && sender.send(change).is_err()
    {
        watchers.remove(bucket);
    }
}

fn decode_entry(row: &rusqlite::Row<'_>) -> Result<Entry, String> {
    let key = columns::text(row, 0, "key")?;
    let key = Key::new(key).map_err(|e| e.to_string())?;
    let value = columns::blob(row, 1, "value").map_err(|reason| format!("key {key}: {reason}"))?;
    let revision =
        columns::unsigned(row, 2, "revision").map_err(|reason| format!("key {key}: {reason}"))?;
    Ok(Entry {
        key,
        value,
        revision,
    })
}

/// Why a replay stopped before its end.
enum SendError {
    /// Reading the snapshot failed.
    Failed(KvError),
    /// The watcher dropped its stream.
    WatcherGone,
}

fn corrupt(bucket: &Bucket, reason: String) -> KvError {
    KvError::Corrupt {
        bucket: bucket.clone(),
        reason,
    }
}
