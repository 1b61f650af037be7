//! The projector: reads the log from its checkpoint, routes each event to the keys it
//! touches, folds, and writes with compare-and-set, then advances the checkpoint.
//!
//! Invariants:
//! - A key's value never goes back: it is written only by an event above its
//!   `applied_through`, with the revision it was read at, so two projectors racing (or one
//!   replaying after a crash) never regress or corrupt a read model.
//! - The checkpoint never goes back either, and is advanced only after every key of the
//!   event is written: a crash replays at most the last event, which then changes nothing.
//! - An event that cannot be decoded or folded stops the projector with a typed error; it is
//!   never skipped, because a projection that skips an event is wrong forever.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use portcullis_proto::events::v1::Event;
use portcullis_proto::{DecodeError, decode_event};
use portcullis_store::{
    Bucket, EventLog, EventStream, Expect, InvalidName, Key, KvError, LogError, ReadModelStore,
    RecordedEvent, SubjectFilter,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::fold::{FoldError, apply_stored};
use crate::targets::{ModelKind, READ_MODEL_BUCKETS, Target, keys_for};

/// First pause after a transient failure; doubled for each further one in a row.
const TRANSIENT_BACKOFF_BASE: Duration = Duration::from_millis(100);
/// Longest pause after a transient failure.
const TRANSIENT_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Base name of the bucket holding projector checkpoints.
pub const PROJECTOR_BUCKET: &str = "projector";

/// How a projector is set up.
#[derive(Clone, Debug)]
pub struct ProjectorOptions {
    /// Names the checkpoint (`checkpoint.<name>`); projectors sharing a name share progress.
    /// One key token. Default: `read_models`.
    pub name: String,
    /// Appended to every bucket name as `<bucket>_<suffix>`, to build a second, independent
    /// set of read models (a rebuild, a test). Default: none.
    pub bucket_suffix: Option<String>,
    /// How often one key's write may lose a compare-and-set race before the projector gives
    /// up with `ProjectorError::Contention`. Default: 64.
    pub max_write_attempts: u32,
    /// How many transient store failures in a row (`Unavailable`, a subscription that
    /// ended) are retried with backoff (100 ms doubling, at most 2 s apart) before the
    /// projector stops with the error. Default: 8 (about 9 s).
    pub max_transient_failures: u32,
    /// A subscription that has left an event the log holds undelivered for this long, with
    /// nothing delivered meanwhile, is dropped and opened again from the checkpoint: a
    /// JetStream consumer on a node that died or is still catching up can go quiet for many
    /// seconds without an error, and every command waits on the projector. Checked while
    /// idle, twice as often. Default: 1 second.
    pub stall_timeout: Duration,
}

impl Default for ProjectorOptions {
    fn default() -> Self {
        Self {
            name: "read_models".to_owned(),
            bucket_suffix: None,
            max_write_attempts: 64,
            max_transient_failures: 8,
            stall_timeout: Duration::from_secs(1),
        }
    }
}

/// The buckets of one set of read models.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Buckets {
    read_models: Vec<(&'static str, Bucket)>,
    projector: Bucket,
}

impl Buckets {
    /// The buckets, each named `<base>` or `<base>_<suffix>`.
    pub fn new(suffix: Option<&str>) -> Result<Self, InvalidName> {
        let name = |base: &str| match suffix {
            Some(suffix) => Bucket::new(&format!("{base}_{suffix}")),
            None => Bucket::new(base),
        };
        Ok(Self {
            read_models: READ_MODEL_BUCKETS
                .iter()
                .map(|base| name(base).map(|bucket| (*base, bucket)))
                .collect::<Result<_, _>>()?,
            projector: name(PROJECTOR_BUCKET)?,
        })
    }

    /// The bucket holding models of `kind`.
    pub fn for_kind(&self, kind: ModelKind) -> &Bucket {
        self.by_base(kind.bucket_base())
    }

    /// The read-model bucket of base name `base` (one of `READ_MODEL_BUCKETS`), or the
    /// projector bucket for any other name.
    pub fn by_base(&self, base: &str) -> &Bucket {
        self.read_models
            .iter()
            .find(|(b, _)| *b == base)
            .map_or(&self.projector, |(_, bucket)| bucket)
    }

    /// Every read-model bucket, in `READ_MODEL_BUCKETS` order.
    pub fn read_models(&self) -> impl Iterator<Item = &Bucket> {
        self.read_models.iter().map(|(_, bucket)| bucket)
    }

    /// The bucket of checkpoints.
    pub fn projector(&self) -> &Bucket {
        &self.projector
    }
}

/// How far a projector has got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// The last log sequence applied (and checkpointed); 0 before the first.
    pub applied_through: u64,
    /// The log head when the projector started; lag is `log.head() - applied_through`.
    pub head_at_start: u64,
    /// Whether everything up to `head_at_start` is applied; stays true once set.
    pub caught_up: bool,
}

/// The stored checkpoint value.
#[derive(serde::Serialize, serde::Deserialize)]
struct Checkpoint {
    applied_through: u64,
}

/// Why a projector stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    /// The options name an invalid bucket or checkpoint key.
    #[error("invalid projector options")]
    Options(#[source] InvalidName),
    /// An event could not be decoded; it is not skipped.
    #[error("projector {projector} stopped at an undecodable event")]
    Decode {
        /// The projector's name.
        projector: String,
        /// What is wrong with the event (names its sequence).
        #[source]
        source: Box<DecodeError>,
    },
    /// An event could not be folded; it is not skipped.
    #[error("projector {projector} cannot fold event {sequence} ({event_type}) of {subject}")]
    Fold {
        /// The projector's name.
        projector: String,
        /// The event's log sequence.
        sequence: u64,
        /// Its type.
        event_type: String,
        /// Its subject.
        subject: String,
        /// Why.
        #[source]
        source: Box<FoldError>,
    },
    /// The read-model store failed.
    #[error("projector {projector}: read-model store failed while {context}")]
    Store {
        /// The projector's name.
        projector: String,
        /// What was being done.
        context: String,
        /// What the store said.
        #[source]
        source: Box<KvError>,
    },
    /// The event log failed.
    #[error("projector {projector}: event log failed")]
    Log {
        /// The projector's name.
        projector: String,
        /// What the log said.
        #[source]
        source: Box<LogError>,
    },
    /// The log subscription ended although no shutdown was asked for.
    #[error("projector {projector}: the event subscription ended after {applied_through}")]
    StreamEnded {
        /// The projector's name.
        projector: String,
        /// The last sequence applied.
        applied_through: u64,
    },
    /// One key kept losing compare-and-set races.
    #[error("projector {projector}: gave up writing {bucket}/{key} after {attempts} conflicts")]
    Contention {
        /// The projector's name.
        projector: String,
        /// The bucket.
        bucket: Bucket,
        /// The key.
        key: Key,
        /// How many attempts lost.
        attempts: u32,
    },
    /// The stored checkpoint is not a checkpoint.
    #[error("projector {projector}: stored checkpoint is corrupt")]
    CorruptCheckpoint {
        /// The projector's name.
        projector: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
}

impl ProjectorError {
    /// Whether retrying the failed step may succeed: the store was unavailable or the
    /// subscription ended. Decode, fold, contention and corruption errors are not.
    pub fn is_transient(&self) -> bool {
        match self {
            ProjectorError::Store { source, .. } => matches!(**source, KvError::Unavailable { .. }),
            ProjectorError::Log { source, .. } => matches!(**source, LogError::Unavailable { .. }),
            ProjectorError::StreamEnded { .. } => true,
            ProjectorError::Options(_)
            | ProjectorError::Decode { .. }
            | ProjectorError::Fold { .. }
            | ProjectorError::Contention { .. }
            | ProjectorError::CorruptCheckpoint { .. } => false,
        }
    }
}

/// Runs the folds over the log into one set of read-model buckets.
pub struct Projector {
    log: Arc<dyn EventLog>,
    kv: Arc<dyn ReadModelStore>,
    options: ProjectorOptions,
    buckets: Buckets,
    /// `checkpoint.<name>` in the projector bucket.
    checkpoint_key: Key,
    /// Published after each checkpoint; receivers measure lag and readiness.
    progress: watch::Sender<Progress>,
}

impl std::fmt::Debug for Projector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projector")
            .field("options", &self.options)
            .field("buckets", &self.buckets)
            .field("progress", &*self.progress.borrow())
            .finish_non_exhaustive()
    }
}

impl Projector {
    /// A projector over `log` writing into `kv`; nothing happens until `run`.
    pub fn new(
        log: Arc<dyn EventLog>,
        kv: Arc<dyn ReadModelStore>,
        options: ProjectorOptions,
    ) -> Result<Self, ProjectorError> {
        let buckets =
            Buckets::new(options.bucket_suffix.as_deref()).map_err(ProjectorError::Options)?;
        let checkpoint_key =
            Key::join(["checkpoint", options.name.as_str()]).map_err(ProjectorError::Options)?;
        if checkpoint_key.as_str().matches('.').count() != 1 {
            return Err(ProjectorError::Options(InvalidName {
                kind: "projector name",
                value: options.name.chars().take(80).collect(),
                reason: "must be one key token (no dots)",
            }));
        }
        let (progress, _) = watch::channel(Progress::default());
        Ok(Self {
            log,
            kv,
            options,
            buckets,
            checkpoint_key,
            progress,
        })
    }

    /// The buckets this projector writes.
    pub fn buckets(&self) -> &Buckets {
        &self.buckets
    }

    /// Its progress, updated after every applied event.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// Projects from the checkpoint on, following the log live, until `shutdown` is
    /// cancelled (then `Ok`) or something fails for good (then the typed error; restart it to
    /// resume from the checkpoint).
    ///
    /// A store that is briefly unavailable (a timeout, a cluster electing a leader) is waited
    /// out: the failed step is retried with backoff, up to `max_transient_failures` times in a
    /// row. Retrying is always safe because applying an event is idempotent.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ProjectorError> {
        let mut failures = 0;
        let Some((checkpoint, head)) = self
            .retrying(&shutdown, &mut failures, || self.prepare())
            .await?
        else {
            return Ok(());
        };
        let mut progress = Progress {
            applied_through: checkpoint,
            head_at_start: head,
            caught_up: checkpoint >= head,
        };
        self.progress.send_replace(progress);
        tracing::info!(
            projector = %self.options.name,
            checkpoint,
            head,
            "Projector starting."
        );
        let mut events = None;
        let mut stall = StallWatch::new(self.options.stall_timeout);
        loop {
            let stream = match &mut events {
                Some(stream) => stream,
                None => {
                    let from = progress.applied_through.saturating_add(1);
                    let subscribed = self
                        .retrying(&shutdown, &mut failures, || self.subscribe(from))
                        .await?;
                    match subscribed {
                        Some(stream) => events.insert(stream),
                        None => return Ok(()),
                    }
                }
            };
            let next = tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(()),
                next = stream.next() => next,
                () = stall.tick() => {
                    if stall.check(self.log.as_ref(), progress.applied_through).await {
                        tracing::warn!(
                            projector = %self.options.name,
                            applied_through = progress.applied_through,
                            "The log subscription has stalled; subscribing again."
                        );
                        events = None;
                    }
                    continue;
                }
            };
            let record = match next {
                Some(Ok(record)) => record,
                failed => {
                    let error = match failed {
                        Some(Err(source)) => self.log_error(source),
                        _ => ProjectorError::StreamEnded {
                            projector: self.options.name.clone(),
                            applied_through: progress.applied_through,
                        },
                    };
                    // Subscribe again from the last applied event after a pause.
                    events = None;
                    if !self.back_off(&shutdown, &mut failures, error).await? {
                        return Ok(());
                    }
                    continue;
                }
            };
            if record.sequence <= progress.applied_through {
                continue; // already applied; the log promises not to repeat, but be safe
            }
            let span = tracing::info_span!(
                "projection.read_models.apply",
                projector = %self.options.name,
                sequence = record.sequence,
                event_type = %record.event_type,
                subject = %record.subject,
            );
            let applied = self
                .retrying(&shutdown, &mut failures, || {
                    self.apply(&record).instrument(span.clone())
                })
                .await?;
            if applied.is_none() {
                return Ok(());
            }
            failures = 0;
            stall.progressed();
            progress.applied_through = record.sequence;
            progress.caught_up |= record.sequence >= progress.head_at_start;
            self.progress.send_replace(progress);
        }
    }

    /// Creates the buckets; returns the checkpoint and the log head.
    async fn prepare(&self) -> Result<(u64, u64), ProjectorError> {
        for bucket in self.buckets.read_models().chain([self.buckets.projector()]) {
            self.kv
                .ensure_bucket(bucket)
                .await
                .map_err(|source| self.store_error(format!("creating bucket {bucket}"), source))?;
        }
        let (checkpoint, _) = self.read_checkpoint().await?;
        let head = self
            .log
            .head()
            .await
            .map_err(|source| self.log_error(source))?;
        Ok((checkpoint, head))
    }

    async fn subscribe(&self, from: u64) -> Result<EventStream, ProjectorError> {
        self.log
            .subscribe(&SubjectFilter::all(), from)
            .await
            .map_err(|source| self.log_error(source))
    }

    /// Runs `step` until it succeeds (`Some`), shutdown is asked for during a pause (`None`),
    /// or it fails for good (the error).
    async fn retrying<T, F, Fut>(
        &self,
        shutdown: &CancellationToken,
        failures: &mut u32,
        mut step: F,
    ) -> Result<Option<T>, ProjectorError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ProjectorError>>,
    {
        loop {
            match step().await {
                Ok(value) => return Ok(Some(value)),
                Err(error) => {
                    if !self.back_off(shutdown, failures, error).await? {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// After a failure: the error itself if it is not transient or too many came in a row;
    /// otherwise a pause, then `true` to retry (`false` if shutdown came first).
    async fn back_off(
        &self,
        shutdown: &CancellationToken,
        failures: &mut u32,
        error: ProjectorError,
    ) -> Result<bool, ProjectorError> {
        if !error.is_transient() || *failures >= self.options.max_transient_failures {
            return Err(error);
        }
        *failures += 1;
        let delay = TRANSIENT_BACKOFF_BASE
            .saturating_mul(1 << (*failures - 1).min(8))
            .min(TRANSIENT_BACKOFF_MAX);
        tracing::warn!(
            projector = %self.options.name,
            error = %error,
            attempt = *failures,
            retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "Projector step failed; retrying."
        );
        tokio::select! {
            () = shutdown.cancelled() => Ok(false),
            () = tokio::time::sleep(delay) => Ok(true),
        }
    }

    /// Applies one recorded event to every key it touches, then checkpoints it.
    async fn apply(&self, record: &RecordedEvent) -> Result<(), ProjectorError> {
        let event = decode_event(record).map_err(|source| ProjectorError::Decode {
            projector: self.options.name.clone(),
            source: Box::new(source),
        })?;
        let targets =
            keys_for(&event, &record.subject).map_err(|source| self.fold_error(record, source))?;
        for target in targets {
            let bucket = self.buckets.for_kind(target.kind);
            match target.target {
                Target::Key(key) => self.apply_key(record, &event, target.kind, &key).await?,
                Target::Prefix(prefix) => {
                    let keys = self
                        .kv
                        .keys(bucket, Some(&prefix))
                        .await
                        .map_err(|source| {
                            self.store_error(format!("listing {bucket}/{prefix}"), source)
                        })?;
                    for key in keys {
                        self.apply_key(record, &event, target.kind, &key).await?;
                    }
                }
            }
        }
        self.advance_checkpoint(record.sequence).await
    }

    /// Folds the event into one key: read, fold, compare-and-set; on a lost race, again.
    async fn apply_key(
        &self,
        record: &RecordedEvent,
        event: &Event,
        kind: ModelKind,
        key: &Key,
    ) -> Result<(), ProjectorError> {
        let bucket = self.buckets.for_kind(kind);
        for _ in 0..self.options.max_write_attempts {
            let current =
                self.kv.get(bucket, key).await.map_err(|source| {
                    self.store_error(format!("reading {bucket}/{key}"), source)
                })?;
            let next = apply_stored(
                kind,
                current.as_ref().map(|entry| entry.value.as_ref()),
                record.sequence,
                event,
            )
            .map_err(|source| self.fold_error(record, source))?;
            let Some(value) = next else {
                return Ok(());
            };
            let expect = current
                .as_ref()
                .map_or(Expect::Absent, |entry| Expect::Revision(entry.revision));
            match self.kv.put(bucket, key, value, expect).await {
                Ok(_) => return Ok(()),
                Err(KvError::Conflict { .. }) => {
                    tracing::debug!(%bucket, %key, "Read-model write lost a race; retrying.");
                }
                Err(source) => {
                    return Err(self.store_error(format!("writing {bucket}/{key}"), source));
                }
            }
        }
        Err(ProjectorError::Contention {
            projector: self.options.name.clone(),
            bucket: bucket.clone(),
            key: key.clone(),
            attempts: self.options.max_write_attempts,
        })
    }

    /// The checkpoint and the revision it was read at.
    async fn read_checkpoint(&self) -> Result<(u64, Option<u64>), ProjectorError> {
        let bucket = self.buckets.projector();
        let entry = self
            .kv
            .get(bucket, &self.checkpoint_key)
            .await
            .map_err(|source| self.store_error("reading the checkpoint".to_owned(), source))?;
        match entry {
            None => Ok((0, None)),
            Some(entry) => {
                let checkpoint: Checkpoint =
                    serde_json::from_slice(&entry.value).map_err(|source| {
                        ProjectorError::CorruptCheckpoint {
                            projector: self.options.name.clone(),
                            source,
                        }
                    })?;
                Ok((checkpoint.applied_through, Some(entry.revision)))
            }
        }
    }

    /// Moves the checkpoint to `sequence` unless it is already there or beyond.
    async fn advance_checkpoint(&self, sequence: u64) -> Result<(), ProjectorError> {
        let bucket = self.buckets.projector();
        for _ in 0..self.options.max_write_attempts {
            let (current, revision) = self.read_checkpoint().await?;
            if current >= sequence {
                return Ok(());
            }
            let value = serde_json::to_vec(&Checkpoint {
                applied_through: sequence,
            })
            .map_err(|source| ProjectorError::CorruptCheckpoint {
                projector: self.options.name.clone(),
                source,
            })?;
            let expect = revision.map_or(Expect::Absent, Expect::Revision);
            match self
                .kv
                .put(bucket, &self.checkpoint_key, value.into(), expect)
                .await
            {
                Ok(_) => return Ok(()),
                Err(KvError::Conflict { .. }) => {}
                Err(source) => {
                    return Err(self.store_error("writing the checkpoint".to_owned(), source));
                }
            }
        }
        Err(ProjectorError::Contention {
            projector: self.options.name.clone(),
            bucket: bucket.clone(),
            key: self.checkpoint_key.clone(),
            attempts: self.options.max_write_attempts,
        })
    }

    fn store_error(&self, context: String, source: KvError) -> ProjectorError {
        ProjectorError::Store {
            projector: self.options.name.clone(),
            context,
            source: Box::new(source),
        }
    }

    fn log_error(&self, source: LogError) -> ProjectorError {
        ProjectorError::Log {
            projector: self.options.name.clone(),
            source: Box::new(source),
        }
    }

    fn fold_error(&self, record: &RecordedEvent, source: FoldError) -> ProjectorError {
        ProjectorError::Fold {
            projector: self.options.name.clone(),
            sequence: record.sequence,
            event_type: record.event_type.clone(),
            subject: record.subject.to_string(),
            source: Box::new(source),
        }
    }
}

/// Notices a log subscription that stopped delivering without an error (a JetStream
/// consumer on a node that died or is catching up can). Used by the projector and by the
/// data plane's pending-change follower.
#[derive(Debug)]
pub struct StallWatch {
    /// Ticks while the projector waits for an event.
    ticker: tokio::time::Interval,
    timeout: Duration,
    /// When the log was first seen holding an event not yet applied, with nothing applied
    /// since.
    behind_since: Option<tokio::time::Instant>,
}

impl StallWatch {
    /// A watch that calls a subscription stalled after `timeout` behind the log while idle,
    /// looking twice as often.
    pub fn new(timeout: Duration) -> Self {
        let period = (timeout / 2).max(Duration::from_millis(10));
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            ticker,
            timeout,
            behind_since: None,
        }
    }

    /// Completes when it is time to look again (while waiting for an event).
    pub async fn tick(&mut self) {
        self.ticker.tick().await;
    }

    /// An event was applied: the subscription is alive.
    pub fn progressed(&mut self) {
        self.behind_since = None;
    }

    /// Asks the log's head while idle; true when the subscription has left an event
    /// undelivered for `timeout` (then the watch starts over). A head that cannot be read
    /// says nothing: the subscription reports its own failures.
    pub async fn check(&mut self, log: &dyn EventLog, applied_through: u64) -> bool {
        let head = tokio::time::timeout(self.timeout, log.head()).await;
        match head {
            Ok(Ok(head)) if head > applied_through => {
                let now = tokio::time::Instant::now();
                let since = *self.behind_since.get_or_insert(now);
                if now.duration_since(since) >= self.timeout {
                    self.behind_since = None;
                    return true;
                }
                false
            }
            Ok(Ok(_)) => {
                self.behind_since = None;
                false
            }
            Ok(Err(_)) | Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests;
