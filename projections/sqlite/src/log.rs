//! `EventLog` on the `events` table: optimistic appends, loads, and replay-then-follow
//! subscriptions driven by the head notification.
//!
//! Owns: the append transaction (duplicate check, version check, insert, head update), reading
//! events back, and `Subscription`, the state of one subscribe stream.
//!
//! Must not: update the head outside the writer mutex or before the commit, poll for new
//! events, or skip a row it cannot decode.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use portcullis_store::{
    AppendError, Appended, BoxError, CommandId, EventLog, EventStream, Loaded, LogError, NewEvent,
    RecordedEvent, Subject, SubjectFilter, Version, validate_new_event,
};
use rusqlite::{OptionalExtension, Row, TransactionBehavior, params};
use tokio::sync::watch;

use crate::connections::run_blocking;
use crate::{Inner, SqliteStore, columns};

/// Rows a subscription reads per trip to a blocking thread. Small under unit tests, so they
/// cross batch boundaries.
const BATCH_ROWS: i64 = if cfg!(test) { 3 } else { 256 };

/// A `LogError::Unavailable` maker for `map_err`.
fn unavailable<E: Into<BoxError>>(context: &'static str) -> impl FnOnce(E) -> LogError {
    move |source| LogError::Unavailable {
        context: context.to_owned(),
        source: source.into(),
    }
}

#[async_trait]
impl EventLog for SqliteStore {
    #[tracing::instrument(
        name = "store.sqlite.append", level = "debug", skip_all,
        fields(%subject, %command_id, expected = expected.0)
    )]
    async fn append(
        &self,
        subject: &Subject,
        expected: Version,
        command_id: &CommandId,
        event: NewEvent,
    ) -> Result<Appended, AppendError> {
        validate_new_event(subject, &event)?;
        let job_subject = subject.clone();
        let command_id = command_id.clone();
        let lost_subject = subject.clone();
        self.blocking(
            move |inner| inner.append(&job_subject, expected, &command_id, event),
            |source| AppendError::Unavailable {
                subject: lost_subject,
                source,
            },
        )
        .await
    }

    #[tracing::instrument(name = "store.sqlite.load", level = "debug", skip_all, fields(%subject))]
    async fn load(&self, subject: &Subject) -> Result<Loaded, LogError> {
        let subject = subject.clone();
        self.blocking(
            move |inner| inner.load(&subject),
            unavailable("loading an aggregate"),
        )
        .await
    }

    async fn head(&self) -> Result<u64, LogError> {
        // Exact: the head is sent under the writer mutex right after each commit, and the
        // lock file guarantees no other process appends to this file.
        Ok(*self.inner.head.borrow())
    }

    #[tracing::instrument(name = "store.sqlite.subscribe", level = "debug", skip_all, fields(%filter, from))]
    async fn subscribe(&self, filter: &SubjectFilter, from: u64) -> Result<EventStream, LogError> {
        let subscription = Subscription {
            store: Arc::downgrade(&self.inner),
            filter: filter.clone(),
            glob: glob_of(filter),
            next: from,
            head: self.inner.head.subscribe(),
            pending: VecDeque::new(),
            failure: None,
            ended: false,
        };
        let stream = futures::stream::unfold(subscription, |mut subscription| async move {
            let item = subscription.next_event().await?;
            Some((item, subscription))
        });
        Ok(Box::pin(stream))
    }
}

impl Inner {
    /// The append transaction. `BEGIN IMMEDIATE` under the writer mutex: the checks and the
    /// insert see no concurrent write.
    fn append(
        &self,
        subject: &Subject,
        expected: Version,
        command_id: &CommandId,
        event: NewEvent,
    ) -> Result<Appended, AppendError> {
        let unavailable = |source: BoxError| AppendError::Unavailable {
            subject: subject.clone(),
            source,
        };
        let sqlite = |source: rusqlite::Error| unavailable(Box::new(source));
        let mut writer = self.lock_writer();
        let tx = writer
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite)?;

        // Dedup is kept forever (the UNIQUE index), whatever `expected` says.
        let duplicate = tx
            .query_row(
                "SELECT seq FROM events WHERE command_id = ?1",
                [command_id.as_str()],
                |row| Ok(columns::unsigned(row, 0, "sequence")),
            )
            .optional()
            .map_err(sqlite)?;
        if let Some(sequence) = duplicate {
            let sequence = sequence.map_err(|reason| {
                unavailable(Box::new(LogError::Corrupt {
                    sequence: 0,
                    reason: format!("event of command {command_id}: {reason}"),
                }))
            })?;
            tracing::debug!(sequence, "Duplicate command; nothing appended.");
            return Ok(Appended {
                sequence,
                duplicate: true,
            });
        }

        let actual = tx
            .query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM events WHERE subject = ?1",
                [subject.as_str()],
                |row| Ok(columns::unsigned(row, 0, "sequence")),
            )
            .map_err(sqlite)?
            .map_err(|reason| {
                unavailable(Box::new(LogError::Corrupt {
                    sequence: 0,
                    reason: format!("last event of {subject}: {reason}"),
                }))
            })?;
        if Version(actual) != expected {
            return Err(AppendError::Conflict {
                subject: subject.clone(),
                expected,
                actual: Some(Version(actual)),
            });
        }

        let sequence = tx
            .query_row(
                "INSERT INTO events (subject, event_type, command_id, recorded_at_ms, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5) RETURNING seq",
                params![
                    subject.as_str(),
                    event.event_type,
                    command_id.as_str(),
                    now_ms(),
                    &event.payload[..]
                ],
                |row| Ok(columns::unsigned(row, 0, "sequence")),
            )
            .map_err(sqlite)?
            .map_err(|reason| {
                unavailable(Box::new(LogError::Corrupt {
                    sequence: 0,
                    reason: format!("new event of {subject}: {reason}"),
                }))
            })?;
        tx.commit().map_err(sqlite)?;
        // Still under the writer mutex, so the head only grows.
        self.head.send_replace(sequence);
        Ok(Appended {
            sequence,
            duplicate: false,
        })
    }

    fn load(&self, subject: &Subject) -> Result<Loaded, LogError> {
        let reader = self
            .readers
            .get()
            .map_err(unavailable("opening a reader"))?;
        let mut statement = reader
            .prepare_cached(
                "SELECT seq, subject, event_type, command_id, recorded_at_ms, payload
                 FROM events WHERE subject = ?1 ORDER BY seq",
            )
            .map_err(unavailable("preparing a load"))?;
        let mut rows = statement
            .query([subject.as_str()])
            .map_err(unavailable("loading an aggregate"))?;
        let mut events = Vec::new();
        while let Some(row) = rows.next().map_err(unavailable("loading an aggregate"))? {
            events.push(decode_event(row)?);
        }
        let version = events.last().map_or(Version::NONE, |e| Version(e.sequence));
        Ok(Loaded { version, events })
    }

    /// Up to `BATCH_ROWS` rows from `from` on whose subject fits `glob`, the matching ones
    /// decoded, and where the next batch starts. `head` was committed before this read began.
    fn read_batch(
        &self,
        filter: &SubjectFilter,
        glob: &str,
        from: u64,
        head: u64,
    ) -> Result<Batch, LogError> {
        let Ok(from_row) = i64::try_from(from) else {
            // Past any sequence SQLite can store: nothing to read, ever.
            return Ok(Batch {
                events: Vec::new(),
                next: from,
                failure: None,
            });
        };
        let reader = self
            .readers
            .get()
            .map_err(unavailable("opening a reader"))?;
        let mut statement = reader
            .prepare_cached(
                "SELECT seq, subject, event_type, command_id, recorded_at_ms, payload
                 FROM events WHERE seq >= ?1 AND subject GLOB ?2 ORDER BY seq LIMIT ?3",
            )
            .map_err(unavailable("preparing a subscription read"))?;
        let mut rows = statement
            .query(params![from_row, glob, BATCH_ROWS])
            .map_err(unavailable("reading events for a subscription"))?;
        let mut events = Vec::new();
        let mut scanned = 0;
        let mut last = None;
        while let Some(row) = rows
            .next()
            .map_err(unavailable("reading events for a subscription"))?
        {
            let event = match decode_event(row) {
                Ok(event) => event,
                // The events before it are still delivered, then the error.
                Err(failure) => {
                    return Ok(Batch {
                        events,
                        next: from,
                        failure: Some(failure),
                    });
                }
            };
            scanned += 1;
            last = Some(event.sequence);
            // The glob only narrows to the host; the filter decides.
            if filter.matches(&event.subject) {
                events.push(event);
            }
        }
        // A short batch saw every matching row up to `head`; the next one may start past it,
        // which is what lets a quiet filter wait instead of re-reading.
        let next = match last {
            Some(last) if scanned == BATCH_ROWS => last + 1,
            Some(last) => (last + 1).max(head + 1),
            None => from.max(head + 1),
        };
        Ok(Batch {
            events,
            next,
            failure: None,
        })
    }
}

/// One read of a subscription.
struct Batch {
    /// The matching events read, in order.
    events: Vec<RecordedEvent>,
    /// Where the next read starts.
    next: u64,
    /// A row that could not be decoded, right after `events`; it ends the subscription.
    failure: Option<LogError>,
}

/// The state of one subscribe stream.
struct Subscription {
    /// Weak, so an open stream does not keep the store (and its lock) alive; the stream ends
    /// when the store closes.
    store: Weak<Inner>,
    filter: SubjectFilter,
    /// SQL pre-filter derived from `filter`.
    glob: String,
    /// The first sequence not yet read.
    next: u64,
    /// The log head; waited on when caught up.
    head: watch::Receiver<u64>,
    /// Read but not yet yielded, in order.
    pending: VecDeque<RecordedEvent>,
    /// An error to yield once `pending` is drained.
    failure: Option<LogError>,
    /// Set after an error has been yielded: the stream then ends.
    ended: bool,
}

impl Subscription {
    async fn next_event(&mut self) -> Option<Result<RecordedEvent, LogError>> {
        loop {
            if self.ended {
                return None;
            }
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if let Some(failure) = self.failure.take() {
                self.ended = true;
                return Some(Err(failure));
            }
            let next = self.next;
            // Returns at once when the head is already there; errs when the store closed.
            let head = match self.head.wait_for(|&head| head >= next).await {
                Ok(head) => *head,
                Err(_) => return None,
            };
            let inner = self.store.upgrade()?;
            let filter = self.filter.clone();
            let glob = self.glob.clone();
            let batch = run_blocking(
                inner,
                move |inner| inner.read_batch(&filter, &glob, next, head),
                unavailable("reading events for a subscription"),
            )
            .await;
            match batch {
                Ok(batch) => {
                    self.pending = batch.events.into();
                    self.next = batch.next;
                    self.failure = batch.failure;
                }
                Err(error) => {
                    self.ended = true;
                    return Some(Err(error));
                }
            }
        }
    }
}

/// The SQL pre-filter of `filter`: `evt.<host>.*` when the host token is literal (a tenant's
/// subscription then reads only its own rows), else `*`. Never narrower than the host, so a
/// row whose subject cannot be parsed still reaches every subscriber that might own it and
/// fails there as `Corrupt` instead of vanishing. Tokens hold only `[A-Za-z0-9_-]`, none of
/// them special to `GLOB`.
fn glob_of(filter: &SubjectFilter) -> String {
    match filter.as_str().split('.').nth(1) {
        Some(host) if host != "*" && host != ">" => format!("{}.{host}.*", Subject::PREFIX),
        _ => "*".to_owned(),
    }
}

/// An event row, or `Corrupt` naming what is wrong with it.
fn decode_event(row: &Row<'_>) -> Result<RecordedEvent, LogError> {
    let sequence = columns::unsigned(row, 0, "sequence").map_err(|reason| LogError::Corrupt {
        sequence: 0,
        reason,
    })?;
    let corrupt = |reason: String| LogError::Corrupt { sequence, reason };
    let subject = columns::text(row, 1, "subject").map_err(corrupt)?;
    let subject = Subject::parse(subject).map_err(|e| corrupt(e.to_string()))?;
    let event_type = columns::text(row, 2, "event type")
        .map_err(corrupt)?
        .to_owned();
    let command_id = columns::text(row, 3, "command id").map_err(corrupt)?;
    let command_id = CommandId::parse(command_id).map_err(|e| corrupt(e.to_string()))?;
    let recorded_at_ms = columns::integer(row, 4, "recorded_at_ms").map_err(corrupt)?;
    let payload = columns::blob(row, 5, "payload").map_err(corrupt)?;
    Ok(RecordedEvent {
        sequence,
        subject,
        event_type,
        command_id,
        recorded_at_ms,
        payload,
    })
}

/// Milliseconds since the Unix epoch by the system clock (0 for a clock set before 1970).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}
