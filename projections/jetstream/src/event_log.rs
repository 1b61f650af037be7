//! `EventLog` on one JetStream stream: one subject per aggregate, the aggregate's version is
//! the stream sequence of its last event.
//!
//! Owns: the append protocol (`Nats-Msg-Id` = command id for dedup,
//! `Nats-Expected-Last-Subject-Sequence` = expected version for OCC, bounded retries with the
//! same message id), consistent loads from the stream leader, ordered-consumer subscriptions,
//! and the decoding of stored messages back into `RecordedEvent`s.
//!
//! Must not: trust a replica for a load or a conflict check, skip a record it cannot decode,
//! or read our own data from `Nats-*` headers.

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use portcullis_store::{
    AppendError, Appended, BoxError, CommandId, EventLog, EventStream, Loaded, LogError, NewEvent,
    RecordedEvent, Subject, SubjectFilter, Version, validate_new_event,
};

use crate::JetStreamStore;
use crate::config::Names;
use crate::publish::{PublishFailure, publish, retry_delay};

/// Header carrying the event's type name.
pub(crate) const EVENT_TYPE_HEADER: &str = "Portcullis-Event-Type";
/// Header carrying the id of the command that caused the event (it is also the `Nats-Msg-Id`,
/// but that header is the server's).
pub(crate) const COMMAND_ID_HEADER: &str = "Portcullis-Command-Id";

impl JetStreamStore {
    #[tracing::instrument(name = "store.jetstream.append", skip_all, fields(%subject, %command_id, expected = expected.0))]
    async fn append_event(
        &self,
        subject: &Subject,
        expected: Version,
        command_id: &CommandId,
        event: NewEvent,
    ) -> Result<Appended, AppendError> {
        validate_new_event(subject, &event)?;
        let wire = self.names.wire_subject(subject);
        let mut headers = HeaderMap::new();
        headers.insert(EVENT_TYPE_HEADER, event.event_type.as_str());
        headers.insert(COMMAND_ID_HEADER, command_id.as_str());
        let started = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            // `headers` first: it replaces the header map, the other builders add to it.
            let message = PublishMessage::build()
                .headers(headers.clone())
                .payload(event.payload.clone())
                .message_id(command_id.as_str())
                .expected_last_subject_sequence(expected.0);
            let (source, again): (BoxError, bool) = match publish(&self.js, &wire, message).await {
                Ok(ack) => {
                    return Ok(Appended {
                        sequence: ack.sequence,
                        duplicate: ack.duplicate,
                    });
                }
                Err(PublishFailure::Conflict) => {
                    return self.resolve_conflict(subject, expected, command_id).await;
                }
                // Nobody received it: on a cluster, the interest of the stream's (new)
                // leader may not have reached this client's server yet. Sending again is
                // safe; keep at it for one request timeout.
                Err(PublishFailure::NoStream) => {
                    let stream = self.names.event_stream();
                    (
                        format!("no stream answered on {wire} (is {stream} there?)").into(),
                        started.elapsed() < self.request_timeout,
                    )
                }
                // Sending again is safe: the message id makes it idempotent. Keep at it for a
                // whole request timeout, since "duplicate message id is in process" (10158)
                // lasts as long as the first copy's proposal, which on a busy cluster can
                // outlast a few quick retries.
                Err(PublishFailure::Retryable(source)) => (
                    source,
                    attempt < self.publish_attempts || started.elapsed() < self.request_timeout,
                ),
                Err(PublishFailure::Failed(source)) => (source, false),
            };
            if again {
                tracing::debug!(attempt, error = %source, "Append not acknowledged; sending it again.");
                tokio::time::sleep(retry_delay(attempt)).await;
                continue;
            }
            return Err(AppendError::Unavailable {
                subject: subject.clone(),
                source,
            });
        }
    }

    /// After a failed expected-sequence check: if the subject already holds an event of this
    /// command, the append had happened (a lost acknowledgement, or a single-node stream, which
    /// checks the sequence before the message id); otherwise it is a real conflict.
    async fn resolve_conflict(
        &self,
        subject: &Subject,
        expected: Version,
        command_id: &CommandId,
    ) -> Result<Appended, AppendError> {
        let loaded = self
            .load_events(subject)
            .await
            .map_err(|err| AppendError::Unavailable {
                subject: subject.clone(),
                source: err.into(),
            })?;
        if let Some(earlier) = loaded.events.iter().find(|e| &e.command_id == command_id) {
            return Ok(Appended {
                sequence: earlier.sequence,
                duplicate: true,
            });
        }
        Err(AppendError::Conflict {
            subject: subject.clone(),
            expected,
            actual: Some(loaded.version),
        })
    }

    #[tracing::instrument(name = "store.jetstream.load", skip_all, fields(%subject))]
    async fn load_events(&self, subject: &Subject) -> Result<Loaded, LogError> {
        let wire = self.names.wire_subject(subject);
        let unavailable = |source: BoxError| LogError::Unavailable {
            context: format!("loading {subject}"),
            source,
        };
        // The stream leader answers this, so the version includes every acknowledged append.
        let last = match self.events.get_last_raw_message_by_subject(&wire).await {
            Ok(last) => last.sequence,
            Err(err) if err.kind() == LastRawMessageErrorKind::NoMessageFound => {
                return Ok(Loaded::default());
            }
            Err(err) => return Err(unavailable(err.into())),
        };
        let mut events = Vec::new();
        let mut next = 1;
        while next <= last {
            let message = self
                .events
                .raw_message_builder()
                .sequence(next)
                .next_by_subject(wire.clone())
                .send()
                .await
                .map_err(|err| unavailable(err.into()))?;
            if message.sequence > last {
                break;
            }
            next = message.sequence + 1;
            events.push(decode(
                &self.names,
                message.sequence,
                message.subject.as_str(),
                Some(&message.headers),
                message.payload,
                message.time,
            )?);
        }
        Ok(Loaded {
            version: Version(last),
            events,
        })
    }

    #[tracing::instrument(name = "store.jetstream.head", skip_all)]
    async fn head_sequence(&self) -> Result<u64, LogError> {
        let info = self
            .events
            .get_info()
            .await
            .map_err(|err| LogError::Unavailable {
                context: format!("reading the state of stream {}", self.names.event_stream()),
                source: err.into(),
            })?;
        Ok(info.state.last_sequence)
    }

    #[tracing::instrument(name = "store.jetstream.subscribe", skip_all, fields(%filter, from))]
    async fn subscribe_events(
        &self,
        filter: &SubjectFilter,
        from: u64,
    ) -> Result<EventStream, LogError> {
        let unavailable = |source: BoxError| LogError::Unavailable {
            context: format!("subscribing to {filter} from {from}"),
            source,
        };
        // Ordered consumers are ephemeral, flow-controlled and recreate themselves after a gap
        // or a reconnect, resuming after the last sequence they delivered.
        let consumer = self
            .events
            .create_consumer(pull::OrderedConfig {
                filter_subject: self.names.wire_filter(filter),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: from.max(1),
                },
                ..Default::default()
            })
            .await
            .map_err(|err| unavailable(err.into()))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|err| unavailable(err.into()))?;
        let names = self.names.clone();
        let context = format!("following {filter}");
        // async-nats 0.51 recreates an ordered consumer that has delivered nothing yet with
        // `DeliverPolicy::All`, dropping the start sequence, so a reset before the first delivery
        // (seen on a three-node cluster) replays the log from 1. The floor drops those replays:
        // a subscriber never sees an event before the sequence it asked for.
        let floor = from.max(1);
        let events = messages.map(move |message| {
            let message = message.map_err(|err| LogError::Unavailable {
                context: context.clone(),
                source: err.into(),
            })?;
            let info = message.info().map_err(|err| LogError::Corrupt {
                sequence: 0,
                reason: format!("unreadable delivery metadata: {err}"),
            })?;
            let (sequence, published) = (info.stream_sequence, info.published);
            decode(
                &names,
                sequence,
                message.subject.as_str(),
                message.headers.as_ref(),
                message.payload.clone(),
                published,
            )
        });
        Ok(Box::pin(events.filter(move |event| {
            std::future::ready(!matches!(event, Ok(event) if event.sequence < floor))
        })))
    }
}

/// Turns a stored message back into an event; anything missing or malformed is corruption.
fn decode(
    names: &Names,
    sequence: u64,
    wire_subject: &str,
    headers: Option<&HeaderMap>,
    payload: Bytes,
    stored_at: async_nats::datetime::DateTime,
) -> Result<RecordedEvent, LogError> {
    let corrupt = |reason: String| LogError::Corrupt { sequence, reason };
    let subject = names
        .strip_namespace(wire_subject)
        .ok_or_else(|| corrupt(format!("subject {wire_subject:?} is outside the namespace")))
        .and_then(|subject| {
            Subject::parse(subject).map_err(|err| corrupt(format!("bad subject: {err}")))
        })?;
    let header = |name: &str| {
        headers
            .and_then(|headers| headers.get(name))
            .map(|value| value.as_str().to_owned())
            .ok_or_else(|| corrupt(format!("header {name} is missing")))
    };
    let event_type = header(EVENT_TYPE_HEADER)?;
    let command_id = CommandId::parse(&header(COMMAND_ID_HEADER)?)
        .map_err(|err| corrupt(format!("bad command id: {err}")))?;
    let recorded_at_ms = i64::try_from(stored_at.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| corrupt("timestamp out of range".to_owned()))?;
    Ok(RecordedEvent {
        sequence,
        subject,
        event_type,
        command_id,
        recorded_at_ms,
        payload,
    })
}

#[async_trait]
impl EventLog for JetStreamStore {
    async fn append(
        &self,
        subject: &Subject,
        expected: Version,
        command_id: &CommandId,
        event: NewEvent,
    ) -> Result<Appended, AppendError> {
        self.append_event(subject, expected, command_id, event)
            .await
    }

    async fn load(&self, subject: &Subject) -> Result<Loaded, LogError> {
        self.load_events(subject).await
    }

    async fn head(&self) -> Result<u64, LogError> {
        self.head_sequence().await
    }

    async fn subscribe(&self, filter: &SubjectFilter, from: u64) -> Result<EventStream, LogError> {
        self.subscribe_events(filter, from).await
    }
}

#[cfg(test)]
mod tests;
