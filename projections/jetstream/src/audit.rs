//! `AuditLog` on its own JetStream stream, `<NAMESPACE>_AUDIT`.
//!
//! Owns: the audit stream's settings and their check, the wire form of a record (subject,
//! headers), the append protocol, and the newest-first query over a stream that can only be
//! read forward.
//!
//! Must not: trust a replica's answer as complete without proof (see "Consistency"), return a
//! record whose stored host differs from the one asked for, or skip a record it cannot decode.
//!
//! # Layout
//!
//! Subject `<ns>.audit.<host>.<decision>.<server>.<human>.<agent>.<tool>`, one token per
//! filterable field, so the server narrows a query by any combination of fields with one
//! subject filter (`*` for a field not filtered on). Ids are plain tokens (`[A-Za-z0-9_-]`), an
//! unknown (empty) field is `_`, and a tool name that is not a plain token (dots, spaces,
//! Unicode) becomes `~` + 16 hex digits of its FNV-1a hash: a collision only makes the server
//! send a record the exact check (below) drops. The fields themselves travel in
//! `Portcullis-Audit-*` headers; the payload is the encoded record. Every record read back is
//! checked: its subject must be the one its headers produce (else `Corrupt`), and it must
//! match the filter exactly on the headers (`AuditFilter::matches`), which is what isolates
//! tenants, not the subject filter alone. `Nats-Msg-Id` is `<host>:<record id>`, so a retried
//! append within `duplicate_window` is stored once; an append not acknowledged (timeout, not
//! ready, a duplicate still in flight) is sent again for `publish_attempts` tries and at least
//! `request_timeout`. `Nats-Expected-Stream` pins every record to the audit stream. File storage, `replicas` copies (R3 in
//! production: the PubAck means a quorum has it), `max_age` retention (`audit_max_age`, default
//! 90 days, oldest removed first), `deny_delete` and `deny_purge`, `allow_direct`.
//!
//! Distinct subjects grow with hosts × decisions × servers × humans × agents × tools used; the
//! server keeps an index entry per live subject, bounded by retention.
//!
//! # Query algorithm
//!
//! Pages are newest first by stream sequence; a cursor is the sequence to continue below. The
//! stream can only be read forward, so a page is found by reading windows of sequences
//! `[lo, hi)` backwards from the top, each window forward:
//!
//! 1. The stream leader gives the newest record matching the subject filter `F`
//!    (`last_by_subj`, one request); none means an empty page. `hi` = that sequence + 1, or the
//!    cursor if lower. `until_ms` and `since_ms` become sequence bounds the same way, from the
//!    leader's time index (`start_time` + `next_by_subj`), widened by `audit_time_slack`
//!    because the index is by storage time, not decision time.
//! 2. Window `[hi - width, hi)` is read with batched direct gets (`next_by_subj = F`, up to
//!    `SCAN_BATCH` records per request), so only matching records cross the network. They are
//!    decoded, checked exactly, and kept newest first; then `hi` moves down to the window's
//!    start and `width` doubles, until `limit + 1` records are kept (the extra one proves a next
//!    page exists) or the floor (first sequence, or `since_ms`) is reached.
//! 3. A window is probed before it is read whole: the first answer carries the number of
//!    matches from `lo` on (`Nats-Num-Pending`), so a window holding far more matches than the
//!    page still needs (more than `4 × needed + 16`: a host whose old records are dense under a
//!    long quiet stretch) is halved instead of read. Halving stops at the initial width,
//!    `2 × (limit + 1)`, which is always read.
//!
//! Cost: one request per window (two when a replica must be confirmed by the leader), plus one
//! to three to the leader for the bounds. A host holding a fraction `d` of the stream needs
//! about `log2(1 / d)` + 1 windows for a page, and reads the matches in them: at most about
//! `4 × (limit + 1)` beyond the page. Measured on a fake stream (unit tests): a page of 50 over
//! 100k records of one host is 1 request and 102 records; at 1 % density, 6 requests and 126
//! records; 50k dense old records under 950k of other hosts, 32 requests (probes, 16 records
//! each) and about 400 records. Time-bounded and filtered queries are no worse: the bounds
//! come from the leader's indexes, the filters from the subject.
//!
//! Limits: filters are exact. `since_ms`/`until_ms` are exact for records stored within
//! `audit_time_slack` of their `time_ms` (the data plane's and the NATS servers' clocks agree
//! to within it) and may miss records stored further off; unbounded queries never do. Records
//! the server cannot tell apart from matches (a tool-hash collision, a time inside the slack)
//! are read and dropped. A page costs at most `log2(stream length)` windows, so a query for a
//! few records of a huge stream stays in the tens of requests.
//!
//! # Consistency
//!
//! Direct gets may be answered by any replica, which can lag the leader. A window counts as
//! complete only with proof: the answering replica returned a record at or above `hi - 1`
//! (replicas apply in order, so it had everything below), or the leader confirms there is no
//! match between the last record returned and `hi` (`next_by_subj`, one request). If the
//! leader knows one, the replica lagged: that record is taken from the leader and reading goes
//! on after it. A query therefore sees every append acknowledged before it started.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::future::Future;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::StatusCode;
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::message::{PublishMessage, StreamMessage};
use async_nats::jetstream::response::Response;
use async_nats::jetstream::stream::{
    Config as StreamConfig, DiscardPolicy, RawMessage, RetentionPolicy, StorageType,
};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use portcullis_store::{
    AuditCursor, AuditDecision, AuditEntry, AuditError, AuditFilter, AuditLog, AuditPage,
    AuditReceipt, BoxError, RecordedAudit, validate_audit_entry, validate_audit_query,
};
use serde::{Deserialize, Serialize};

use crate::JetStreamStore;
use crate::config::{JetStreamConfig, Names};
use crate::connect::is_transient;
use crate::publish::{PublishFailure, publish, retry_delay};
use crate::stream_state::{StreamState, has_leader, wait_until_ready};

/// Header of the record id.
const RECORD_ID_HEADER: &str = "Portcullis-Audit-Record-Id";
/// Header of the host.
const HOST_HEADER: &str = "Portcullis-Audit-Host";
/// Header of the decision time, decimal milliseconds since the Unix epoch.
const TIME_HEADER: &str = "Portcullis-Audit-Time-Ms";
/// Header of the decision, `allowed` or `denied`.
const DECISION_HEADER: &str = "Portcullis-Audit-Decision";
/// Header of the human; absent when unknown.
const HUMAN_HEADER: &str = "Portcullis-Audit-Human";
/// Header of the agent; absent when unknown.
const AGENT_HEADER: &str = "Portcullis-Audit-Agent";
/// Header of the server; absent when unknown.
const SERVER_HEADER: &str = "Portcullis-Audit-Server";
/// Header of the tool; absent when unknown.
const TOOL_HEADER: &str = "Portcullis-Audit-Tool";

/// The token of an unknown (empty) field.
const UNKNOWN_TOKEN: &str = "_";

/// Records per direct-get request while reading a window.
const SCAN_BATCH: usize = 256;
/// Records in the first request of a probed window: enough to finish a sparse window in one
/// request, small enough to waste little when the probe says the window is too dense.
const PROBE_BATCH: usize = 16;

/// The JetStream API prefix of the store's context (`ContextBuilder` default).
const API_PREFIX: &str = "$JS.API";

/// Audit settings of a store and whether its audit stream was checked yet.
#[derive(Debug)]
pub(crate) struct AuditSettings {
    /// The stream's `max_age`.
    max_age: Duration,
    /// See `JetStreamConfig::audit_time_slack`.
    time_slack: Duration,
    /// The stream's `duplicate_window`.
    duplicate_window: Duration,
    /// Set once the stream exists with our settings; a failed check is tried again next time.
    ready: tokio::sync::OnceCell<()>,
}

impl AuditSettings {
    pub(crate) fn new(config: &JetStreamConfig) -> AuditSettings {
        AuditSettings {
            max_age: config.audit_max_age,
            time_slack: config.audit_time_slack,
            duplicate_window: config.duplicate_window,
            ready: tokio::sync::OnceCell::new(),
        }
    }
}

/// The audit stream exists with settings this store cannot use.
#[derive(Debug, thiserror::Error)]
#[error(
    "audit stream {stream} exists with settings this store cannot use ({differences}); it is \
     not used as it is: fix or recreate it, or pick another namespace"
)]
pub struct AuditStreamMismatch {
    /// The stream's name.
    pub stream: String,
    /// Each differing setting, as `name: wanted X, found Y`, joined by `; `.
    pub differences: String,
}

impl JetStreamStore {
    /// The name of the audit stream of this store's namespace.
    pub fn audit_stream_name(&self) -> &str {
        self.names.audit_stream()
    }

    /// Creates the audit stream, or checks the settings of the existing one. The first audit
    /// append or query does this by itself; call it at start-up to fail early.
    #[tracing::instrument(name = "store.jetstream.audit_stream", skip_all)]
    pub async fn ensure_audit_stream(&self) -> Result<(), AuditError> {
        self.audit
            .ready
            .get_or_try_init(|| self.create_audit_stream())
            .await
            .copied()
    }

    async fn create_audit_stream(&self) -> Result<(), AuditError> {
        let stream = self.names.audit_stream();
        let failed = |source: BoxError| AuditError::Unavailable {
            context: format!("creating or reading audit stream {stream}"),
            source,
        };
        let wanted = wanted_audit_stream(&self.names, self.replicas, &self.audit);
        // As for the event stream: a replicated create waits for an election and may time out
        // on a busy cluster; creating is idempotent, so try again.
        let mut attempt = 0;
        let created = loop {
            attempt += 1;
            match self.js.get_or_create_stream(wanted.clone()).await {
                Ok(created) => break created,
                Err(err) if attempt < self.publish_attempts && is_transient(&err) => {
                    tracing::debug!(attempt, error = %err, "Audit stream not ready; trying again.");
                    tokio::time::sleep(retry_delay(attempt)).await;
                }
                Err(err) => return Err(failed(err.into())),
            }
        };
        let mut info = created.cached_info().clone();
        if !has_leader(&info) {
            info = match wait_until_ready(&self.js, stream, self.request_timeout)
                .await
                .map_err(|err| failed(err.into()))?
            {
                StreamState::Ready(info) => *info,
                StreamState::Leaderless => {
                    return Err(failed(
                        format!("no leader elected within {:?}", self.request_timeout).into(),
                    ));
                }
                StreamState::Missing => return Err(failed("deleted while connecting".into())),
            };
        }
        let differences = crate::connect::stream_differences(&wanted, &info.config);
        if !differences.is_empty() {
            return Err(failed(Box::new(AuditStreamMismatch {
                stream: stream.to_owned(),
                differences: differences.join("; "),
            })));
        }
        Ok(())
    }

    #[tracing::instrument(
        name = "store.jetstream.audit_append", level = "debug", skip_all,
        fields(host = %entry.host_id, record = %entry.record_id)
    )]
    async fn append_audit(&self, entry: AuditEntry) -> Result<AuditReceipt, AuditError> {
        validate_audit_entry(&entry)?;
        self.ensure_audit_stream().await?;
        let prefix = self.names.audit_subject_prefix();
        let subject = wire_subject(&prefix, &entry);
        let headers = entry_headers(&entry);
        let message_id = format!("{}:{}", entry.host_id, entry.record_id);
        let unavailable = |source: BoxError| AuditError::Unavailable {
            context: format!(
                "appending audit record {} of host {}",
                entry.record_id, entry.host_id
            ),
            source,
        };
        // Concurrent appends are pipelined: each sends at once on the shared connection and
        // waits only for its own acknowledgement, so many are in flight together and the
        // servers batch their writes.
        let started = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let message = PublishMessage::build()
                .headers(headers.clone())
                .payload(entry.record.clone())
                .message_id(message_id.as_str())
                .expected_stream(self.names.audit_stream());
            let (source, again): (BoxError, bool) = match publish(&self.js, &subject, message).await
            {
                Ok(ack) => {
                    return Ok(AuditReceipt {
                        sequence: ack.sequence,
                        duplicate: ack.duplicate,
                    });
                }
                // No expected sequence is sent, so this cannot happen; fail rather than loop.
                Err(PublishFailure::Conflict) => {
                    ("the server reported a sequence conflict".into(), false)
                }
                // As for events: a new leader's interest may not have reached this server.
                Err(PublishFailure::NoStream) => (
                    format!("no stream answered on {subject}").into(),
                    started.elapsed() < self.audit_append_timeout,
                ),
                // Sending again is always safe (the message id makes it idempotent), and a
                // failed audit append fails the tool call, so keep at it through a leader
                // election (`audit_append_timeout`): "duplicate message id is in process"
                // (10158) lasts as long as the first copy's proposal, and a stream whose
                // leader's node died answers nothing until a new leader is elected.
                Err(PublishFailure::Retryable(source)) => (
                    source,
                    attempt < self.publish_attempts
                        || started.elapsed() < self.audit_append_timeout,
                ),
                Err(PublishFailure::Failed(source)) => (source, false),
            };
            if !again {
                return Err(unavailable(source));
            }
            tracing::debug!(attempt, error = %source, "Audit append not acknowledged; sending it again.");
            tokio::time::sleep(retry_delay(attempt)).await;
        }
    }

    #[tracing::instrument(
        name = "store.jetstream.audit_query", level = "debug", skip_all,
        fields(host = %filter.host_id, limit)
    )]
    async fn query_audit(
        &self,
        filter: AuditFilter,
        limit: usize,
        cursor: Option<AuditCursor>,
    ) -> Result<AuditPage, AuditError> {
        validate_audit_query(&filter, limit)?;
        self.ensure_audit_stream().await?;
        let reader = Reader {
            store: self,
            stream: self.names.audit_stream(),
            subject_filter: wire_filter(&self.names.audit_subject_prefix(), &filter),
        };
        let empty = AuditPage {
            records: Vec::new(),
            next: None,
        };

        // 1. Bounds, from the leader.
        let Some(newest) = reader.leader_last().await? else {
            return Ok(empty);
        };
        let mut hi = newest.saturating_add(1);
        if let Some(cursor) = cursor {
            hi = hi.min(cursor.before_sequence());
        }
        let slack_ms = i64::try_from(self.audit.time_slack.as_millis()).unwrap_or(i64::MAX);
        if let Some(until) = filter.until_ms
            && let Some(after) = reader
                .leader_first_stored_from(until.saturating_add(slack_ms).saturating_add(1))
                .await?
        {
            hi = hi.min(after);
        }
        let floor = match filter.since_ms {
            Some(since) => match reader
                .leader_first_stored_from(since.saturating_sub(slack_ms))
                .await?
            {
                Some(first) => first,
                None => return Ok(empty),
            },
            None => 1,
        };

        // 2 and 3. Windows, newest first.
        let names = &self.names;
        let mut found = collect_newest(&reader, floor, hi, limit + 1, |stored| {
            let record = decode(names, stored)?;
            Ok(filter.matches(&record.entry).then_some(record))
        })
        .await?;
        let next = if found.len() > limit {
            found.truncate(limit);
            found.last().map(|r| AuditCursor::before(r.sequence))
        } else {
            None
        };
        Ok(AuditPage {
            records: found,
            next,
        })
    }
}

#[async_trait]
impl AuditLog for JetStreamStore {
    async fn append(&self, entry: AuditEntry) -> Result<AuditReceipt, AuditError> {
        self.append_audit(entry).await
    }

    async fn query(
        &self,
        filter: AuditFilter,
        limit: usize,
        cursor: Option<AuditCursor>,
    ) -> Result<AuditPage, AuditError> {
        self.query_audit(filter, limit, cursor).await
    }
}

// ---------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------

/// A record as read from the stream, not yet decoded.
#[derive(Debug)]
struct Stored {
    sequence: u64,
    subject: String,
    headers: HeaderMap,
    payload: Bytes,
}

impl From<StreamMessage> for Stored {
    fn from(message: StreamMessage) -> Stored {
        Stored {
            sequence: message.sequence,
            subject: message.subject.to_string(),
            headers: message.headers,
            payload: message.payload,
        }
    }
}

/// How dense a window may be before it is halved instead of read.
#[derive(Clone, Copy, Debug)]
struct Probe {
    /// Matches at or above the window's `hi`.
    above: u64,
    /// Most matches the window may hold.
    cap: u64,
}

/// The outcome of reading one window.
#[derive(Debug)]
enum Window {
    /// Every match in the window, oldest first, and how many matches the replica counted from
    /// the window's start on, when it said.
    Read {
        messages: Vec<Stored>,
        from_lo: Option<u64>,
    },
    /// The probe counted more matches than the cap; nothing was kept.
    TooDense,
}

/// One answer to a batched direct get.
#[derive(Debug, Default)]
struct Batch {
    messages: Vec<Stored>,
    /// `Nats-Num-Pending` of the first message: matches after it, from the replica's view.
    first_pending: Option<u64>,
    /// The replica said there is no match at or after the start (404).
    none: bool,
    /// No replica answered direct gets (503): read through the leader instead.
    no_responders: bool,
}

/// The direct-get request (`$JS.API.DIRECT.GET.<stream>`), batched.
#[derive(Debug, Serialize)]
struct DirectBatchRequest<'a> {
    seq: u64,
    next_by_subj: &'a str,
    batch: usize,
}

/// The leader's message-get request (`$JS.API.STREAM.MSG.GET.<stream>`).
#[derive(Debug, Default, Serialize)]
struct LeaderGetRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_by_subj: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_by_subj: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_time: Option<String>,
}

/// The leader's answer.
#[derive(Debug, Deserialize)]
struct LeaderGetResponse {
    message: RawMessage,
}

/// Reads of one query: the stream and the subject filter.
struct Reader<'a> {
    store: &'a JetStreamStore,
    stream: &'a str,
    subject_filter: String,
}

impl Reader<'_> {
    fn unavailable(&self, what: &str) -> impl FnOnce(BoxError) -> AuditError + use<> {
        let context = format!("{what} in audit stream {}", self.stream);
        move |source| AuditError::Unavailable { context, source }
    }

    /// Sequence of the newest record matching the filter, by the leader.
    async fn leader_last(&self) -> Result<Option<u64>, AuditError> {
        let request = LeaderGetRequest {
            last_by_subj: Some(&self.subject_filter),
            ..LeaderGetRequest::default()
        };
        Ok(self.leader_get(&request).await?.map(|m| m.sequence))
    }

    /// Sequence of the first record matching the filter that NATS stored at or after `ms`, by
    /// the leader's time index.
    async fn leader_first_stored_from(&self, ms: i64) -> Result<Option<u64>, AuditError> {
        let request = LeaderGetRequest {
            next_by_subj: Some(&self.subject_filter),
            start_time: Some(rfc3339_utc(ms)),
            ..LeaderGetRequest::default()
        };
        Ok(self.leader_get(&request).await?.map(|m| m.sequence))
    }

    /// The first record matching the filter at or after `sequence`, by the leader.
    async fn leader_next(&self, sequence: u64) -> Result<Option<Stored>, AuditError> {
        let request = LeaderGetRequest {
            seq: Some(sequence),
            next_by_subj: Some(&self.subject_filter),
            ..LeaderGetRequest::default()
        };
        self.leader_get(&request).await
    }

    async fn leader_get(
        &self,
        request: &LeaderGetRequest<'_>,
    ) -> Result<Option<Stored>, AuditError> {
        let response: Response<LeaderGetResponse> = self
            .store
            .js
            .request(format!("STREAM.MSG.GET.{}", self.stream), request)
            .await
            .map_err(|err| self.unavailable("reading from the leader")(err.into()))?;
        match response {
            Response::Ok(found) => StreamMessage::try_from(found.message)
                .map(|m| Some(Stored::from(m)))
                .map_err(self.unavailable("decoding the leader's answer")),
            Response::Err { error } if error.error_code() == ErrorCode::NO_MESSAGE_FOUND => {
                Ok(None)
            }
            Response::Err { error } => {
                Err(self.unavailable("reading from the leader")(error.into()))
            }
        }
    }

    /// Up to `batch` records matching the filter from `start` on, from whichever replica
    /// answers direct gets.
    async fn direct_batch(&self, start: u64, batch: usize) -> Result<Batch, AuditError> {
        let client = self.store.js.client();
        let inbox = client.new_inbox();
        let mut replies = client
            .subscribe(inbox.clone())
            .await
            .map_err(|err| self.unavailable("subscribing for direct gets")(err.into()))?;
        let request = DirectBatchRequest {
            seq: start,
            next_by_subj: &self.subject_filter,
            batch,
        };
        let payload = serde_json::to_vec(&request)
            .map_err(|err| self.unavailable("encoding a direct get")(err.into()))?;
        client
            .publish_with_reply(
                format!("{API_PREFIX}.DIRECT.GET.{}", self.stream),
                inbox,
                payload.into(),
            )
            .await
            .map_err(|err| self.unavailable("sending a direct get")(err.into()))?;
        let mut answer = Batch::default();
        loop {
            let reply = tokio::time::timeout(self.store.request_timeout, replies.next())
                .await
                .map_err(|_| {
                    self.unavailable("waiting for a direct get")(
                        format!("no answer within {:?}", self.store.request_timeout).into(),
                    )
                })?
                .ok_or_else(|| {
                    self.unavailable("waiting for a direct get")("the connection closed".into())
                })?;
            match reply.status.map(|s| s.as_u16()) {
                None | Some(200) => {
                    let pending = reply
                        .headers
                        .as_ref()
                        .and_then(|h| h.get("Nats-Num-Pending"))
                        .and_then(|v| v.as_str().parse::<u64>().ok());
                    let message = StreamMessage::try_from(reply)
                        .map_err(|err| self.unavailable("decoding a direct get")(err.into()))?;
                    if answer.messages.is_empty() {
                        answer.first_pending = pending;
                    }
                    answer.messages.push(message.into());
                    if answer.messages.len() > batch {
                        return Err(self.unavailable("reading a direct get")(
                            "the server sent more records than asked for".into(),
                        ));
                    }
                }
                // End of batch.
                Some(204) => return Ok(answer),
                Some(code) if code == StatusCode::NOT_FOUND.as_u16() => {
                    answer.none = answer.messages.is_empty();
                    return Ok(answer);
                }
                Some(code) if code == StatusCode::NO_RESPONDERS.as_u16() => {
                    answer.no_responders = true;
                    return Ok(answer);
                }
                Some(code) => {
                    return Err(self.unavailable("reading a direct get")(
                        format!(
                            "status {code} {}",
                            reply.description.as_deref().unwrap_or_default()
                        )
                        .into(),
                    ));
                }
            }
        }
    }
}

/// Where windows are read from: the real stream (`Reader`), or a fake in tests.
trait WindowSource: Sync {
    /// Up to `batch` matches from `start` on, from any replica.
    fn direct_batch(
        &self,
        start: u64,
        batch: usize,
    ) -> impl Future<Output = Result<Batch, AuditError>> + Send;

    /// The first match at or after `start`, from the leader.
    fn leader_next(
        &self,
        start: u64,
    ) -> impl Future<Output = Result<Option<Stored>, AuditError>> + Send;
}

impl WindowSource for Reader<'_> {
    fn direct_batch(
        &self,
        start: u64,
        batch: usize,
    ) -> impl Future<Output = Result<Batch, AuditError>> + Send {
        Reader::direct_batch(self, start, batch)
    }

    fn leader_next(
        &self,
        start: u64,
    ) -> impl Future<Output = Result<Option<Stored>, AuditError>> + Send {
        Reader::leader_next(self, start)
    }
}

/// Steps 2 and 3 of the query: reads windows below `hi` (exclusive), newest first, down to
/// `floor` (inclusive), until `keep` accepted `want` records; returns them newest first (more
/// than `want` when the last window held more).
async fn collect_newest<S, T, K>(
    source: &S,
    floor: u64,
    mut hi: u64,
    want: usize,
    mut keep: K,
) -> Result<Vec<T>, AuditError>
where
    S: WindowSource,
    T: Send,
    K: FnMut(Stored) -> Result<Option<T>, AuditError> + Send,
{
    let min_width = 2 * want as u64;
    let mut width = min_width;
    let mut found = Vec::new();
    // Matches at or above `hi`, as the last window's first answer counted them.
    let mut above: Option<u64> = None;
    while found.len() < want && hi > floor {
        let lo = hi.saturating_sub(width).max(floor);
        let still_needed = (want - found.len()) as u64;
        let probe = match above {
            Some(above) if hi - lo > min_width => Some(Probe {
                above,
                cap: 4 * still_needed + PROBE_BATCH as u64,
            }),
            _ => None,
        };
        match read_window(source, lo, hi, probe).await? {
            Window::TooDense => {
                width = (width / 2).max(min_width);
            }
            Window::Read { messages, from_lo } => {
                for message in messages.into_iter().rev() {
                    if let Some(kept) = keep(message)? {
                        found.push(kept);
                    }
                }
                above = from_lo;
                hi = lo;
                width = width.saturating_mul(2);
            }
        }
    }
    Ok(found)
}

/// Every record matching the filter with `lo <= sequence < hi`, oldest first, complete as
/// of the leader (see "Consistency"). With a probe, gives up early on a dense window.
async fn read_window<S: WindowSource>(
    source: &S,
    lo: u64,
    hi: u64,
    probe: Option<Probe>,
) -> Result<Window, AuditError> {
    let mut messages = Vec::new();
    let mut start = lo;
    let mut from_lo = None;
    let mut first = true;
    while start < hi {
        let size = if first && probe.is_some() {
            PROBE_BATCH
        } else {
            SCAN_BATCH
        };
        let batch = source.direct_batch(start, size).await?;
        if batch.no_responders {
            tracing::debug!("No replica answers direct gets; reading through the leader.");
        }
        if first {
            from_lo = match (&batch.first_pending, batch.none) {
                (Some(pending), _) => Some(pending + 1),
                (None, true) => Some(0),
                _ => None,
            };
            if let (Some(count), Some(probe)) = (from_lo, probe)
                && count.saturating_sub(probe.above) > probe.cap
            {
                return Ok(Window::TooDense);
            }
            first = false;
        }
        let full = batch.messages.len() == size;
        let mut last_returned = None;
        for message in batch.messages {
            if message.sequence < start {
                return Err(AuditError::Corrupt {
                    sequence: message.sequence,
                    reason: format!("a direct get from {start} returned an earlier record"),
                });
            }
            last_returned = Some(message.sequence);
            if message.sequence >= hi {
                // The replica had applied everything below `hi`: the window is complete.
                return Ok(Window::Read { messages, from_lo });
            }
            messages.push(message);
        }
        if let Some(last) = last_returned {
            if last + 1 >= hi {
                return Ok(Window::Read { messages, from_lo });
            }
            start = last + 1;
            if full {
                continue;
            }
        }
        // The replica knows no more matches below `hi`; the leader must agree.
        match source.leader_next(start).await? {
            Some(missed) if missed.sequence < hi => {
                tracing::debug!(
                    sequence = missed.sequence,
                    "A replica lagged behind the audit stream leader; read it from the leader."
                );
                start = missed.sequence + 1;
                messages.push(missed);
            }
            _ => return Ok(Window::Read { messages, from_lo }),
        }
    }
    Ok(Window::Read { messages, from_lo })
}

// ---------------------------------------------------------------------------------------
// Wire form
// ---------------------------------------------------------------------------------------

/// The settings the audit stream must have.
fn wanted_audit_stream(names: &Names, replicas: usize, audit: &AuditSettings) -> StreamConfig {
    StreamConfig {
        name: names.audit_stream().to_owned(),
        subjects: vec![format!("{}.>", names.audit_subject_prefix())],
        storage: StorageType::File,
        num_replicas: replicas,
        retention: RetentionPolicy::Limits,
        // Records leave only by age, oldest first; nobody deletes or purges one.
        max_age: audit.max_age,
        discard: DiscardPolicy::Old,
        deny_delete: true,
        deny_purge: true,
        allow_direct: true,
        duplicate_window: audit.duplicate_window,
        ..Default::default()
    }
}

/// Whether a value is used verbatim as a subject token.
fn is_plain_token(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= portcullis_store::MAX_AUDIT_ID_BYTES
        && value != UNKNOWN_TOKEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The subject token of a field value (see "Layout").
fn token(value: &str) -> Cow<'_, str> {
    if value.is_empty() {
        Cow::Borrowed(UNKNOWN_TOKEN)
    } else if is_plain_token(value) {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(format!("~{:016x}", fnv1a(value.as_bytes())))
    }
}

/// 64-bit FNV-1a: stable across builds and platforms, which the stored subjects need.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The subject a record is stored under.
fn wire_subject(prefix: &str, entry: &AuditEntry) -> String {
    format!(
        "{prefix}.{}.{}.{}.{}.{}.{}",
        token(&entry.host_id),
        entry.decision.as_str(),
        token(&entry.server_id),
        token(&entry.human_id),
        token(&entry.agent_id),
        token(&entry.tool),
    )
}

/// The subject filter of a query: the host, and a token or `*` for every other field.
fn wire_filter(prefix: &str, filter: &AuditFilter) -> String {
    fn field(value: &Option<String>) -> Cow<'_, str> {
        value.as_deref().map_or(Cow::Borrowed("*"), token)
    }
    let rest = [
        filter
            .decision
            .map_or(Cow::Borrowed("*"), |d| Cow::Borrowed(d.as_str())),
        field(&filter.server_id),
        field(&filter.human_id),
        field(&filter.agent_id),
        field(&filter.tool),
    ];
    if rest.iter().all(|t| t == "*") {
        format!("{prefix}.{}.>", token(&filter.host_id))
    } else {
        format!("{prefix}.{}.{}", token(&filter.host_id), rest.join("."))
    }
}

/// The headers carrying a record's fields.
fn entry_headers(entry: &AuditEntry) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(RECORD_ID_HEADER, entry.record_id.as_str());
    headers.insert(HOST_HEADER, entry.host_id.as_str());
    headers.insert(TIME_HEADER, entry.time_ms.to_string().as_str());
    headers.insert(DECISION_HEADER, entry.decision.as_str());
    for (name, value) in [
        (HUMAN_HEADER, &entry.human_id),
        (AGENT_HEADER, &entry.agent_id),
        (SERVER_HEADER, &entry.server_id),
        (TOOL_HEADER, &entry.tool),
    ] {
        // Validated: no control characters, so never a CR or LF the header map would refuse.
        if !value.is_empty() {
            headers.insert(name, value.as_str());
        }
    }
    headers
}

/// A stored record back as an entry; anything missing, malformed or inconsistent with its
/// subject is corruption.
fn decode(names: &Names, stored: Stored) -> Result<RecordedAudit, AuditError> {
    let sequence = stored.sequence;
    let corrupt = |reason: String| AuditError::Corrupt { sequence, reason };
    let optional = |name: &str| {
        stored
            .headers
            .get(name)
            .map(|value| value.as_str().to_owned())
            .unwrap_or_default()
    };
    let required = |name: &str| {
        stored
            .headers
            .get(name)
            .map(|value| value.as_str().to_owned())
            .ok_or_else(|| corrupt(format!("header {name} is missing")))
    };
    let time_ms = required(TIME_HEADER)?;
    let time_ms = time_ms
        .parse::<i64>()
        .map_err(|_| corrupt(format!("header {TIME_HEADER} is {time_ms:?}, not a number")))?;
    let decision = required(DECISION_HEADER)?;
    let decision = AuditDecision::parse(&decision).ok_or_else(|| {
        corrupt(format!(
            "decision {decision:?} is neither allowed nor denied"
        ))
    })?;
    let entry = AuditEntry {
        record_id: required(RECORD_ID_HEADER)?,
        host_id: required(HOST_HEADER)?,
        time_ms,
        human_id: optional(HUMAN_HEADER),
        agent_id: optional(AGENT_HEADER),
        server_id: optional(SERVER_HEADER),
        tool: optional(TOOL_HEADER),
        decision,
        record: stored.payload,
    };
    let expected = wire_subject(&names.audit_subject_prefix(), &entry);
    if expected != stored.subject {
        return Err(corrupt(format!(
            "stored under {:?}, but its headers say {expected:?}",
            stored.subject
        )));
    }
    Ok(RecordedAudit { sequence, entry })
}

/// `ms` (clamped at the epoch) as an RFC 3339 UTC timestamp with milliseconds, the form the
/// server's `start_time` takes.
fn rfc3339_utc(ms: i64) -> String {
    let ms = ms.max(0);
    let (days, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut text = String::with_capacity(24);
    let _ = write!(
        text,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    );
    text
}

#[cfg(test)]
mod tests;
