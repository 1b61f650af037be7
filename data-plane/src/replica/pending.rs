//! Changes the event log has recorded that the read models do not show yet.
//!
//! A change reaches a data plane's read models in two replicated writes: the event's append,
//! then the projector's write of each key it touches. This follower reads the event log
//! itself, so a data plane learns of a change (a revoked grant, a revoked session, a capped
//! agent, a disabled tool) one write earlier. For each event it marks the keys whose value
//! the event would change, given the value the replica holds; a decision that reads a marked
//! key whose value is older than the mark waits for the projected value instead of deciding
//! from the old one (`Policy` reports it, the proxy holds the request).
//!
//! It only ever delays a decision, never makes one: a follower that falls behind or stops
//! leaves the replica's own freshness rules in charge, exactly as without it. A mark is
//! dropped once the replica shows the key at or past it, once the projector's checkpoint
//! has passed it (the projector wrote everything for it, or found nothing to write), or
//! after `MARK_LIFETIME` at the latest.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use portcullis_projector::{Buckets, StallWatch, Target, apply_stored, keys_for};
use portcullis_proto::decode_event;
use portcullis_store::{EventLog, Key, RecordedEvent, SubjectFilter};
use tokio_util::sync::CancellationToken;

use super::Replica;

/// Longest a mark holds decisions on its key. Far beyond a healthy projection (tens of
/// milliseconds); a projector that is down is the replica's staleness rules' business.
const MARK_LIFETIME: Duration = Duration::from_secs(30);

/// How long the follower may stay behind the log's head, idle, before it subscribes again.
const STALL_TIMEOUT: Duration = Duration::from_millis(500);

/// The marks.
pub(super) struct Pending {
    /// Key → log sequence of the newest change to it not yet seen in the replica. Keys name
    /// their model (`grant.…`, `session.…`), so one map serves every bucket.
    keys: moka::sync::Cache<Key, u64>,
    /// Key prefixes an event changes every key under (a removed human's grants), with the
    /// event's sequence and when it was read (a prefix mark also ends after `MARK_LIFETIME`).
    prefixes: std::sync::Mutex<Vec<(Key, u64, std::time::Instant)>>,
    /// Whether `prefixes` holds anything: spares every decision the lock when it does not.
    any_prefix: std::sync::atomic::AtomicBool,
    /// The last log sequence read.
    seen_through: AtomicU64,
    /// Requests that waited for a marked key.
    holds: AtomicU64,
}

impl Pending {
    pub(super) fn new() -> Self {
        Self {
            keys: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(MARK_LIFETIME)
                .build(),
            prefixes: std::sync::Mutex::new(Vec::new()),
            any_prefix: std::sync::atomic::AtomicBool::new(false),
            seen_through: AtomicU64::new(0),
            holds: AtomicU64::new(0),
        }
    }

    /// The log sequence of a change to `key` that a value folded through `applied_through`
    /// does not include, if one is marked and the projector has not passed it.
    pub(super) fn ahead_of(&self, key: &Key, applied_through: u64, projected: u64) -> Option<u64> {
        let settled = |sequence: u64| sequence <= applied_through || sequence <= projected;
        if let Some(sequence) = self.keys.get(key) {
            if !settled(sequence) {
                return Some(sequence);
            }
            // Only this mark: a newer one set meanwhile stays.
            self.keys
                .entry(key.clone())
                .and_compute_with(|current| match current {
                    Some(entry) if *entry.value() == sequence => moka::ops::compute::Op::Remove,
                    _ => moka::ops::compute::Op::Nop,
                });
        }
        if !self.any_prefix.load(Ordering::Acquire) {
            return None;
        }
        let mut prefixes = self
            .prefixes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        prefixes
            .retain(|(_, sequence, read)| *sequence > projected && read.elapsed() < MARK_LIFETIME);
        if prefixes.is_empty() {
            self.any_prefix.store(false, Ordering::Release);
        }
        prefixes
            .iter()
            .filter(|(prefix, sequence, _)| key.is_under(prefix) && !settled(*sequence))
            .map(|(_, sequence, _)| *sequence)
            .max()
    }

    pub(super) fn seen_through(&self) -> u64 {
        self.seen_through.load(Ordering::Acquire)
    }

    pub(super) fn held(&self) {
        self.holds.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn mark(&self, key: Key, sequence: u64) {
        self.keys
            .entry(key)
            .and_compute_with(|current| match current {
                Some(entry) if *entry.value() >= sequence => moka::ops::compute::Op::Nop,
                _ => moka::ops::compute::Op::Put(sequence),
            });
    }

    pub(super) fn mark_prefix(&self, prefix: Key, sequence: u64, projected: u64) {
        let mut prefixes = self
            .prefixes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        prefixes.retain(|(_, at, read)| *at > projected && read.elapsed() < MARK_LIFETIME);
        prefixes.push((prefix, sequence, std::time::Instant::now()));
        self.any_prefix.store(true, Ordering::Release);
    }

    pub(super) fn metrics_text(&self, out: &mut String) {
        use std::fmt::Write as _;
        out.push_str(
            "# HELP portcullis_policy_log_sequence Last event-log sequence this data plane has read for pending changes.\n",
        );
        out.push_str("# TYPE portcullis_policy_log_sequence gauge\n");
        let _ = writeln!(
            out,
            "portcullis_policy_log_sequence {}",
            self.seen_through.load(Ordering::Acquire)
        );
        out.push_str(
            "# HELP portcullis_policy_pending_holds_total Requests that waited for a recorded change to reach the read models.\n",
        );
        out.push_str("# TYPE portcullis_policy_pending_holds_total counter\n");
        let _ = writeln!(
            out,
            "portcullis_policy_pending_holds_total {}",
            self.holds.load(Ordering::Relaxed)
        );
    }
}

/// Reads the log from its head on and marks what each event changes, re-subscribing after a
/// failure; ends with `shutdown`.
#[tracing::instrument(name = "replica.pending", skip_all)]
pub(super) async fn follow(
    log: Arc<dyn EventLog>,
    buckets: Buckets,
    replica: Replica,
    shutdown: CancellationToken,
) {
    let Some(pending) = replica.pending.clone() else {
        return;
    };
    let everything = SubjectFilter::all();
    let mut backoff = Duration::from_millis(100);
    // A subscription served by a node that died or is catching up can go quiet without an
    // error while the log moves on.
    let mut stall = StallWatch::new(STALL_TIMEOUT);
    // The sequence to read next; `None` until the first subscription's start is known.
    let mut resume_at: Option<u64> = None;
    loop {
        // From the head at the first start (the replica's catch-up covers what came
        // before); after a failure or a stall, from where reading stopped.
        let from = match resume_at {
            Some(from) => Ok(from),
            None => tokio::select! {
                () = shutdown.cancelled() => return,
                head = log.head() => head.map(|head| head.saturating_add(1)),
            },
        };
        let subscribed = match from {
            Ok(from) => {
                resume_at = Some(from);
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    stream = log.subscribe(&everything, from) => stream,
                }
            }
            Err(error) => Err(error),
        };
        match subscribed {
            Ok(mut events) => loop {
                let next = tokio::select! {
                    biased;
                    () = shutdown.cancelled() => return,
                    next = events.next() => next,
                    () = stall.tick() => {
                        let read_through = resume_at.unwrap_or(1).saturating_sub(1);
                        if stall.check(log.as_ref(), read_through).await {
                            tracing::debug!(read_through, "Pending-change follower stalled; again.");
                            break;
                        }
                        continue;
                    }
                };
                stall.progressed();
                match next {
                    Some(Ok(record)) => {
                        backoff = Duration::from_millis(100);
                        mark_changes(&pending, &buckets, &replica, &record);
                        resume_at = Some(record.sequence.saturating_add(1));
                        pending
                            .seen_through
                            .fetch_max(record.sequence, Ordering::AcqRel);
                    }
                    Some(Err(error)) => {
                        tracing::debug!(%error, "Pending-change follower lost the log; again.");
                        break;
                    }
                    None => break,
                }
            },
            Err(error) => tracing::debug!(%error, "Pending-change follower cannot read the log."),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Marks each key `record` would change in the replica's current state. An event that cannot
/// be read marks nothing: the projector stops on it, and the replica's staleness rules then
/// refuse everything.
fn mark_changes(pending: &Pending, buckets: &Buckets, replica: &Replica, record: &RecordedEvent) {
    let Ok(event) = decode_event(record) else {
        return;
    };
    let Ok(targets) = keys_for(&event, &record.subject) else {
        return;
    };
    for target in targets {
        let bucket = buckets.for_kind(target.kind);
        match target.target {
            Target::Key(key) => {
                let current = replica.get(bucket, &key);
                let changes = apply_stored(
                    target.kind,
                    current
                        .as_ref()
                        .map(|cached| cached.value.to_json())
                        .as_deref(),
                    record.sequence,
                    &event,
                );
                // A fold error is the projector's to report; waiting for it is fail-closed.
                if !matches!(changes, Ok(None)) {
                    pending.mark(key, record.sequence);
                }
            }
            Target::Prefix(prefix) => {
                pending.mark_prefix(prefix, record.sequence, replica.projected_through());
            }
        }
    }
}
