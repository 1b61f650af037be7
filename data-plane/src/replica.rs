//! An in-memory replica of read-model buckets.
//!
//! One task per bucket runs `ReadModelStore::watch` and applies each change to a concurrent
//! map with a revision guard (under the map's entry lock), so a late or repeated change can
//! never replace a newer value. Values are held decoded where reads need them often (`value`). A probe task asks the store for its log head and each bucket's last
//! revision every `probe_interval`; the replica is fresh only while every bucket has caught
//! up, every watch is running, the last successful probe is younger than `max_staleness`, and
//! no bucket's watch has left a revision the store held for longer than `max_staleness`
//! unapplied. The last rule catches a watch that stalls without an error (a JetStream
//! consumer on a node that died can go quiet for seconds before the client notices): such a
//! watch is re-established after half the bound, and the replica fails closed at the bound.
//! With the projector's checkpoint configured, the probe also compares the log head with what
//! the projector has applied: read models that trail the log by more than the bound (a
//! projector down or stopped) make the replica stale, so a revocation recorded in the log is
//! enforced within the bound or every request is refused.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use futures::StreamExt;
use portcullis_projector::Buckets;
use portcullis_store::{Bucket, EventLog, Key, ReadModelStore, WatchEvent};
use tokio_util::sync::CancellationToken;

mod pending;
mod value;

pub use value::{DecodedKind, Model, SessionRecord, Value};

/// Settings of a replica.
#[derive(Clone, Debug)]
pub struct ReplicaConfig {
    /// Buckets to mirror.
    pub buckets: Vec<Bucket>,
    /// How long the replica may go without word from the store before it is stale.
    pub max_staleness: Duration,
    /// How often the store is probed when nothing changes. Default: a fifth of `max_staleness`.
    pub probe_interval: Duration,
    /// The projector's checkpoint (its bucket and key, a JSON `{"applied_through": n}`),
    /// compared with the log head; `None` leaves projection lag unchecked.
    pub projection: Option<(Bucket, Key)>,
    /// The read-model buckets, when the replica also follows the event log to learn of
    /// changes before they are projected (`pending_change`); `None` does not follow it.
    pub pending_changes: Option<Buckets>,
}

impl ReplicaConfig {
    /// A config with the default probe interval.
    pub fn new(buckets: Vec<Bucket>, max_staleness: Duration) -> Self {
        Self {
            buckets,
            max_staleness,
            probe_interval: max_staleness / 5,
            projection: None,
            pending_changes: None,
        }
    }

    /// Also follows the event log and marks each key a recorded change will rewrite, until
    /// the replica shows it (`Replica::pending_change`); `buckets` maps models to buckets.
    pub fn with_pending_changes(mut self, buckets: Buckets) -> Self {
        self.pending_changes = Some(buckets);
        self
    }

    /// Also checks that the projector with checkpoint `key` in `bucket` keeps up with the log.
    pub fn with_projection(mut self, bucket: Bucket, key: Key) -> Self {
        self.projection = Some((bucket, key));
        self
    }
}

/// The projector's progress as the probe last saw it.
struct ProjectionState {
    bucket: Bucket,
    key: Key,
    /// The projector's `applied_through`.
    projected: AtomicU64,
    /// A log head seen while the projector had not applied it (reached once `projected` is
    /// at least this).
    target: AtomicU64,
    /// Milliseconds after the replica's start when `target` was seen.
    target_seen_ms: AtomicU64,
}

/// The checkpoint's stored form.
#[derive(serde::Deserialize)]
struct Checkpoint {
    applied_through: u64,
}

/// One cached value and the revision it was written at. Cheap to clone.
#[derive(Clone, Debug, PartialEq)]
pub struct Cached {
    /// The value.
    pub value: Value,
    /// Its revision in the bucket.
    pub revision: u64,
}

/// What the map holds for a key: a value, or the revision at which it was deleted (kept so
/// that an older value can never be applied over the delete).
#[derive(Clone, Debug, PartialEq)]
enum Slot {
    Live(Cached),
    Deleted(u64),
}

impl Slot {
    fn revision(&self) -> u64 {
        match self {
            Slot::Live(cached) => cached.revision,
            Slot::Deleted(revision) => *revision,
        }
    }
}

/// Why the replica cannot be trusted right now.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Staleness {
    /// A bucket has not delivered its initial state yet.
    #[error("read model {0} has not caught up yet")]
    NotCaughtUp(String),
    /// A bucket's watch failed and is being re-established.
    #[error("watch on read model {0} is down")]
    WatchDown(String),
    /// The store has not answered for longer than the bound.
    #[error("no word from the store for {0:?} (bound {1:?})")]
    Silent(Duration, Duration),
    /// A bucket's watch has not delivered a change the store held this long ago.
    #[error("watch on read model {0} is {1:?} behind the store")]
    Behind(String, Duration),
    /// The projector has not applied an event the log held this long ago.
    #[error("the read models are {0:?} behind the event log (is the projector running?)")]
    ProjectionBehind(Duration),
}

struct BucketState {
    /// Every key of the bucket. A replica mirrors its buckets whole and never evicts, so this
    /// is a plain concurrent map rather than a cache: moka's eviction bookkeeping measured
    /// about 270 bytes a key, as much again as a compact session.
    /// Keyed by the key's text: a `Box<str>` is a third smaller than a `Key` (a `String`).
    cache: DashMap<Box<str>, Slot>,
    caught_up: AtomicBool,
    watching: AtomicBool,
    /// Milliseconds after the replica's start when the watch last went down (meaningful only
    /// while `watching` is false after having caught up).
    down_since_ms: AtomicU64,
    applied: AtomicU64,
    /// A revision the store held, seen by a probe while the watch had not applied it yet
    /// (reached once `applied` is at least this).
    target: AtomicU64,
    /// Milliseconds after the replica's start when `target` was seen.
    target_seen_ms: AtomicU64,
    /// Milliseconds after the replica's start when the current watch was opened.
    watch_opened_ms: AtomicU64,
    /// Tells the watch task to drop a stalled watch and open a new one.
    rewatch: tokio::sync::Notify,
    /// Milliseconds after the replica's start (plus one, so 0 means none) when a re-watch's
    /// replay first left keys it could not confirm; cleared by a replay that confirms all.
    unconfirmed_since_ms: AtomicU64,
}

/// The replica. Cheap to clone.
#[derive(Clone)]
pub struct Replica {
    buckets: Arc<HashMap<Bucket, Arc<BucketState>>>,
    started: Instant,
    /// Milliseconds after `started` of the last successful contact with the store.
    last_contact_ms: Arc<AtomicU64>,
    max_staleness: Duration,
    projection: Option<Arc<ProjectionState>>,
    pending: Option<Arc<pending::Pending>>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("buckets", &self.buckets.keys().collect::<Vec<_>>())
            .field("max_staleness", &self.max_staleness)
            .finish()
    }
}

impl Replica {
    /// Starts mirroring; the tasks stop when `shutdown` is cancelled.
    pub fn start(
        config: ReplicaConfig,
        kv: Arc<dyn ReadModelStore>,
        log: Arc<dyn EventLog>,
        shutdown: CancellationToken,
    ) -> Self {
        let buckets: HashMap<Bucket, Arc<BucketState>> = config
            .buckets
            .iter()
            .map(|bucket| {
                let state = BucketState {
                    cache: DashMap::new(),
                    caught_up: AtomicBool::new(false),
                    watching: AtomicBool::new(false),
                    down_since_ms: AtomicU64::new(0),
                    applied: AtomicU64::new(0),
                    target: AtomicU64::new(0),
                    target_seen_ms: AtomicU64::new(0),
                    watch_opened_ms: AtomicU64::new(0),
                    rewatch: tokio::sync::Notify::new(),
                    unconfirmed_since_ms: AtomicU64::new(0),
                };
                (bucket.clone(), Arc::new(state))
            })
            .collect();
        let replica = Self {
            buckets: Arc::new(buckets),
            started: Instant::now(),
            last_contact_ms: Arc::new(AtomicU64::new(0)),
            max_staleness: config.max_staleness,
            projection: config.projection.clone().map(|(bucket, key)| {
                Arc::new(ProjectionState {
                    bucket,
                    key,
                    projected: AtomicU64::new(0),
                    target: AtomicU64::new(0),
                    target_seen_ms: AtomicU64::new(0),
                })
            }),
            pending: config
                .pending_changes
                .as_ref()
                .map(|_| Arc::new(pending::Pending::new())),
        };
        if let Some(buckets) = config.pending_changes.clone() {
            tokio::spawn(pending::follow(
                log.clone(),
                buckets,
                replica.clone(),
                shutdown.clone(),
            ));
        }
        for (bucket, state) in replica.buckets.iter() {
            tokio::spawn(watch_bucket(
                kv.clone(),
                bucket.clone(),
                state.clone(),
                replica.clone(),
                shutdown.clone(),
            ));
        }
        tokio::spawn(probe(
            log,
            kv,
            replica.clone(),
            config.probe_interval,
            shutdown,
        ));
        replica
    }

    /// The live value of `key` in `bucket`, if the replica holds one.
    pub fn get(&self, bucket: &Bucket, key: &Key) -> Option<Cached> {
        match &*self.buckets.get(bucket)?.cache.get(key.as_str())? {
            Slot::Live(cached) => Some(cached.clone()),
            Slot::Deleted(_) => None,
        }
    }

    /// How many live keys the replica holds in `bucket`.
    pub fn len(&self, bucket: &Bucket) -> usize {
        self.buckets.get(bucket).map_or(0, |state| {
            state
                .cache
                .iter()
                .filter(|entry| matches!(entry.value(), Slot::Live(_)))
                .count()
        })
    }

    /// The log sequence of a recorded change to `key` that its value, folded through
    /// `applied_through`, does not show yet: a decision reading it should wait for the
    /// projected value. `None` when nothing is pending (or the log is not followed).
    pub fn pending_change(&self, key: &Key, applied_through: u64) -> Option<u64> {
        self.pending
            .as_ref()?
            .ahead_of(key, applied_through, self.projected_through())
    }

    /// The last event-log sequence the pending-change follower has read (`None` when the log
    /// is not followed).
    pub fn pending_log_sequence(&self) -> Option<u64> {
        self.pending.as_ref().map(|pending| pending.seen_through())
    }

    /// Counts a request that waited for a pending change.
    pub fn held_for_pending_change(&self) {
        if let Some(pending) = &self.pending {
            pending.held();
        }
    }

    /// What the projector had applied at the last probe (0 when not checked).
    fn projected_through(&self) -> u64 {
        self.projection
            .as_ref()
            .map_or(0, |projection| projection.projected.load(Ordering::Acquire))
    }

    /// The highest revision applied in `bucket`.
    pub fn applied_revision(&self, bucket: &Bucket) -> u64 {
        self.buckets
            .get(bucket)
            .map_or(0, |state| state.applied.load(Ordering::Acquire))
    }

    /// Prometheus text-format gauges describing the replica: live keys and applied revision
    /// per bucket, seconds since the store was last heard from, and whether it is fresh.
    pub fn metrics_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let mut buckets: Vec<(&Bucket, &Arc<BucketState>)> = self.buckets.iter().collect();
        buckets.sort_by(|a, b| a.0.cmp(b.0));
        out.push_str(
            "# HELP portcullis_read_model_keys Live keys held in memory per read-model bucket.\n",
        );
        out.push_str("# TYPE portcullis_read_model_keys gauge\n");
        for (bucket, _) in &buckets {
            let _ = writeln!(
                out,
                "portcullis_read_model_keys{{bucket=\"{bucket}\"}} {}",
                self.len(bucket)
            );
        }
        out.push_str("# HELP portcullis_read_model_revision Highest bucket revision applied.\n");
        out.push_str("# TYPE portcullis_read_model_revision gauge\n");
        for (bucket, state) in &buckets {
            let _ = writeln!(
                out,
                "portcullis_read_model_revision{{bucket=\"{bucket}\"}} {}",
                state.applied.load(Ordering::Acquire)
            );
        }
        out.push_str(
            "# HELP portcullis_read_model_silence_seconds Seconds since the store last answered.\n",
        );
        out.push_str("# TYPE portcullis_read_model_silence_seconds gauge\n");
        let _ = writeln!(
            out,
            "portcullis_read_model_silence_seconds {:.3}",
            self.since_contact().as_secs_f64()
        );
        out.push_str(
            "# HELP portcullis_read_model_fresh 1 when decisions may be made from the replica.\n",
        );
        out.push_str("# TYPE portcullis_read_model_fresh gauge\n");
        let _ = writeln!(
            out,
            "portcullis_read_model_fresh {}",
            u8::from(self.freshness().is_ok())
        );
        if let Some(pending) = &self.pending {
            pending.metrics_text(&mut out);
        }
        out
    }

    /// `Ok` when the replica may be used for decisions; otherwise why not.
    pub fn freshness(&self) -> Result<(), Staleness> {
        for (bucket, state) in self.buckets.iter() {
            if !state.caught_up.load(Ordering::Acquire) {
                return Err(Staleness::NotCaughtUp(bucket.to_string()));
            }
            // A watch that broke is re-established with its whole state; in between, the
            // data it delivered is still within the bound until `max_staleness` has passed.
            if !state.watching.load(Ordering::Acquire) {
                let down_since = Duration::from_millis(state.down_since_ms.load(Ordering::Acquire));
                if self.started.elapsed().saturating_sub(down_since) > self.max_staleness {
                    return Err(Staleness::WatchDown(bucket.to_string()));
                }
            }
            if let Some(behind) = self.behind(state)
                && behind > self.max_staleness
            {
                return Err(Staleness::Behind(bucket.to_string(), behind));
            }
            // Re-watches that keep leaving keys unconfirmed may be hiding deletes.
            let unconfirmed = state.unconfirmed_since_ms.load(Ordering::Acquire);
            if unconfirmed != 0 {
                let since = Duration::from_millis(unconfirmed - 1);
                if self.started.elapsed().saturating_sub(since) > self.max_staleness {
                    return Err(Staleness::WatchDown(bucket.to_string()));
                }
            }
        }
        let silent = self.since_contact();
        if silent > self.max_staleness {
            return Err(Staleness::Silent(silent, self.max_staleness));
        }
        if let Some(projection) = &self.projection {
            let target = projection.target.load(Ordering::Acquire);
            if target > projection.projected.load(Ordering::Acquire) {
                let seen = Duration::from_millis(projection.target_seen_ms.load(Ordering::Acquire));
                let behind = self.started.elapsed().saturating_sub(seen);
                if behind > self.max_staleness {
                    return Err(Staleness::ProjectionBehind(behind));
                }
            }
        }
        Ok(())
    }

    /// Waits up to `within` for the replica to become fresh: `Ok` as soon as it is, else why
    /// it still is not. A store failover (a JetStream stream electing a new leader after its
    /// node died takes seconds) then delays requests instead of refusing them, while nothing
    /// is ever decided from data that cannot be shown current.
    pub async fn wait_fresh(&self, within: Duration) -> Result<(), Staleness> {
        /// How often a waiting request looks again; freshness is a few atomic loads.
        const POLL: Duration = Duration::from_millis(50);
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let staleness = match self.freshness() {
                Ok(()) => return Ok(()),
                Err(staleness) => staleness,
            };
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(staleness);
            }
            tokio::time::sleep_until(deadline.min(now + POLL)).await;
        }
    }

    /// A probe saw the log's head at `head` and the projector's checkpoint at `projected`.
    fn observe_projection(&self, projection: &ProjectionState, head: u64, projected: u64) {
        projection.projected.fetch_max(projected, Ordering::AcqRel);
        let projected = projection.projected.load(Ordering::Acquire);
        if projection.target.load(Ordering::Acquire) <= projected && head > projected {
            projection
                .target_seen_ms
                .store(self.now_ms(), Ordering::Release);
            projection.target.store(head, Ordering::Release);
        }
    }

    /// How long the bucket's watch has left a revision the store held unapplied, if it has.
    fn behind(&self, state: &BucketState) -> Option<Duration> {
        let target = state.target.load(Ordering::Acquire);
        if target <= state.applied.load(Ordering::Acquire) {
            return None;
        }
        let seen = Duration::from_millis(state.target_seen_ms.load(Ordering::Acquire));
        Some(self.started.elapsed().saturating_sub(seen))
    }

    /// Milliseconds since the replica started.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A probe saw `last` as the bucket's newest revision: remember it as the target when the
    /// previous one was reached; re-open a watch that has left a target unapplied for half
    /// the bound (and has been open that long, so a re-opened watch gets time to catch up).
    fn observe(&self, bucket: &Bucket, state: &BucketState, last: u64) {
        let applied = state.applied.load(Ordering::Acquire);
        if state.target.load(Ordering::Acquire) <= applied {
            if last > applied {
                state.target_seen_ms.store(self.now_ms(), Ordering::Release);
                state.target.store(last, Ordering::Release);
            }
            return;
        }
        let half = self.max_staleness / 2;
        let opened = Duration::from_millis(state.watch_opened_ms.load(Ordering::Acquire));
        if let Some(behind) = self.behind(state)
            && behind > half
            && self.started.elapsed().saturating_sub(opened) > half
        {
            tracing::warn!(
                bucket = %bucket,
                behind_ms = u64::try_from(behind.as_millis()).unwrap_or(u64::MAX),
                applied,
                target = state.target.load(Ordering::Acquire),
                "Read-model watch has stalled; opening a new one."
            );
            state.rewatch.notify_one();
        }
    }

    fn since_contact(&self) -> Duration {
        let last = Duration::from_millis(self.last_contact_ms.load(Ordering::Acquire));
        self.started.elapsed().saturating_sub(last)
    }

    fn touch(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_contact_ms.fetch_max(now, Ordering::AcqRel);
    }
}

/// Applies `slot` unless the cache already holds its revision or a newer one.
fn upsert(state: &BucketState, key: Key, slot: Slot) {
    let revision = slot.revision();
    match state.cache.entry(key.into_string().into_boxed_str()) {
        Entry::Occupied(mut current) => {
            if current.get().revision() < revision {
                current.insert(slot);
            }
        }
        Entry::Vacant(vacant) => {
            vacant.insert(slot);
        }
    }
    state.applied.fetch_max(revision, Ordering::AcqRel);
}

/// The slot of a value the store delivered.
fn live(key: &Key, value: bytes::Bytes, revision: u64) -> Slot {
    Slot::Live(Cached {
        value: Value::decode(key, value),
        revision,
    })
}

/// After a (re-)watch delivered the store's state: whatever the cache holds that the replay
/// did not show was probably deleted while the previous watch was down. Each such key is
/// read from the store's leader before it is dropped, because a replay can also be
/// incomplete (a JetStream consumer served by a node still catching up after it rejoined):
/// a key the store still holds is kept, at the revision the store has; one it does not hold
/// is marked deleted. `false` when some key could not be read (a leader election): nothing
/// is dropped on a guess, because a delete marked at the value's own revision would hide that
/// value from every later replay; the caller watches again instead, and the replica turns
/// stale at the bound if that keeps failing (fail closed).
async fn forget_unseen(
    kv: &dyn ReadModelStore,
    bucket: &Bucket,
    state: &BucketState,
    seen: &HashSet<Key>,
) -> bool {
    let unseen: Vec<(Key, u64)> = state
        .cache
        .iter()
        .filter(|entry| matches!(entry.value(), Slot::Live(_)))
        .filter_map(|entry| {
            // Every key in the map was a valid `Key`.
            let key = Key::new(entry.key()).ok()?;
            (!seen.contains(&key)).then(|| (key, entry.value().revision()))
        })
        .collect();
    // Normally a handful (keys deleted during the gap); read a few at a time, since the
    // replica is not caught up until this is done.
    let read: Vec<_> = futures::stream::iter(unseen)
        .map(|(key, revision)| async move {
            let found = kv.get(bucket, &key).await;
            (key, revision, found)
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let mut complete = true;
    for (key, revision, found) in read {
        match found {
            Ok(Some(entry)) => {
                tracing::info!(%key, "A re-watch did not replay a key the store holds; kept.");
                let slot = live(&key, entry.value, entry.revision);
                upsert(state, key, slot);
            }
            Ok(None) => {
                state
                    .cache
                    .insert(key.into_string().into_boxed_str(), Slot::Deleted(revision));
            }
            Err(error) => {
                tracing::warn!(%key, %error, "Cannot confirm a key the re-watch did not replay; watching again.");
                complete = false;
            }
        }
    }
    complete
}

#[tracing::instrument(name = "replica.watch", skip_all, fields(bucket = %bucket))]
async fn watch_bucket(
    kv: Arc<dyn ReadModelStore>,
    bucket: Bucket,
    state: Arc<BucketState>,
    replica: Replica,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        // Everything up to the revision read before the watch opens is in the state the
        // watch starts from, even a delete it does not deliver: applied once caught up.
        let floor = tokio::select! {
            () = shutdown.cancelled() => return,
            last = kv.last_revision(&bucket) => last.unwrap_or(0),
        };
        let stream = tokio::select! {
            () = shutdown.cancelled() => return,
            stream = kv.watch(&bucket) => stream,
        };
        match stream {
            Ok(mut stream) => {
                state
                    .watch_opened_ms
                    .store(replica.now_ms(), Ordering::Release);
                state.watching.store(true, Ordering::Release);
                // Keys delivered before `CaughtUp`, kept only when a replay must be compared
                // with what the replica already holds (a re-watch): a first watch of an empty
                // replica has nothing to forget, and a large bucket's keys twice over would
                // double its start-up memory.
                let mut seen: Option<HashSet<Key>> = (!state.cache.is_empty()).then(HashSet::new);
                let mut replaying = true;
                loop {
                    let next = tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = state.rewatch.notified() => break,
                        next = stream.next() => next,
                    };
                    match next {
                        Some(Ok(WatchEvent::Put(entry))) => {
                            backoff = Duration::from_millis(100);
                            if let Some(seen) = seen.as_mut() {
                                seen.insert(entry.key.clone());
                            }
                            let slot = live(&entry.key, entry.value, entry.revision);
                            upsert(&state, entry.key, slot);
                            replica.touch();
                        }
                        Some(Ok(WatchEvent::Deleted { key, revision })) => {
                            upsert(&state, key, Slot::Deleted(revision));
                            replica.touch();
                        }
                        Some(Ok(WatchEvent::CaughtUp)) => {
                            if std::mem::take(&mut replaying) {
                                if let Some(seen) = seen.take()
                                    && !forget_unseen(kv.as_ref(), &bucket, &state, &seen).await
                                {
                                    let now = replica.now_ms().saturating_add(1);
                                    let _ = state.unconfirmed_since_ms.compare_exchange(
                                        0,
                                        now,
                                        Ordering::AcqRel,
                                        Ordering::Acquire,
                                    );
                                    break;
                                }
                                state.unconfirmed_since_ms.store(0, Ordering::Release);
                            }
                            state.applied.fetch_max(floor, Ordering::AcqRel);
                            state.caught_up.store(true, Ordering::Release);
                            replica.touch();
                            tracing::info!(keys = state.cache.len(), "Read model caught up.");
                        }
                        Some(Err(error)) => {
                            tracing::warn!(error = %error, "Read-model watch failed; re-watching.");
                            break;
                        }
                        None => {
                            tracing::warn!("Read-model watch ended; re-watching.");
                            break;
                        }
                    }
                }
            }
            // Until the projector has created it, a bucket is missing; that is not news.
            Err(error @ portcullis_store::KvError::NoSuchBucket(_)) => {
                tracing::debug!(error = %error, "Read model does not exist yet; retrying.");
            }
            Err(error) => tracing::warn!(error = %error, "Cannot watch read model; retrying."),
        }
        if state.watching.swap(false, Ordering::AcqRel) {
            let now = u64::try_from(replica.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            state.down_since_ms.store(now, Ordering::Release);
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn probe(
    log: Arc<dyn EventLog>,
    kv: Arc<dyn ReadModelStore>,
    replica: Replica,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(50)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        // Bounded: a hung store must not keep the probe from reporting silence.
        let bound = interval.max(Duration::from_millis(50));
        match tokio::time::timeout(bound, log.head()).await {
            Ok(Ok(head)) => {
                replica.touch();
                if let Some(projection) = &replica.projection {
                    let read = kv.get(&projection.bucket, &projection.key);
                    match tokio::time::timeout(bound, read).await {
                        Ok(Ok(entry)) => {
                            let projected = entry
                                .and_then(|entry| {
                                    serde_json::from_slice::<Checkpoint>(&entry.value).ok()
                                })
                                .map_or(0, |checkpoint| checkpoint.applied_through);
                            replica.observe_projection(projection, head, projected);
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(error = %error, "Checkpoint probe failed.");
                        }
                        Err(_) => tracing::debug!("Checkpoint probe timed out."),
                    }
                }
            }
            Ok(Err(error)) => tracing::debug!(error = %error, "Store probe failed."),
            Err(_) => tracing::debug!("Store probe timed out."),
        }
        for (bucket, state) in replica.buckets.iter() {
            if !state.caught_up.load(Ordering::Acquire) || !state.watching.load(Ordering::Acquire) {
                continue;
            }
            match tokio::time::timeout(bound, kv.last_revision(bucket)).await {
                Ok(Ok(last)) => replica.observe(bucket, state, last),
                Ok(Err(error)) => {
                    tracing::debug!(%bucket, error = %error, "Revision probe failed.")
                }
                Err(_) => tracing::debug!(%bucket, "Revision probe timed out."),
            }
        }
    }
}

#[cfg(test)]
mod tests;
