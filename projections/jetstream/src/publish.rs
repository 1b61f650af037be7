//! One JetStream publish and what its outcome means for a store that uses optimistic
//! concurrency.
//!
//! Owns: sending a message and waiting for its acknowledgement, and sorting every failure into
//! conflict, retryable or failed by the server's error code.
//!
//! Must not: retry or decide what a conflict means for the caller; the event log and the
//! read-model store each do that their own way.

use std::time::Duration;

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::{self, ErrorCode};
use portcullis_store::BoxError;

/// `JSStreamWrongLastSequenceErrF`: the expected-last-sequence check failed.
const WRONG_LAST_SEQUENCE: ErrorCode = ErrorCode::STREAM_WRONG_LAST_SEQUENCE;
/// `JSStreamWrongLastSequenceConstantErr`: on a replicated stream, another write to the same
/// subject is already being proposed. A conflict as real as 10071, but async-nats reports it as
/// `PublishErrorKind::Other`.
const WRONG_LAST_SEQUENCE_IN_FLIGHT: ErrorCode = ErrorCode(10164);
/// `JSStreamExpectedLastSeqPerSubjectNotReady` (503): the leader cannot check yet; retry.
const EXPECTED_LAST_SEQUENCE_NOT_READY: ErrorCode = ErrorCode(10163);
/// `JSStreamDuplicateMessageConflict`: a message with this id is being stored right now;
/// retry and the server answers with the duplicate acknowledgement.
const DUPLICATE_IN_FLIGHT: ErrorCode = ErrorCode(10158);

/// What a failed publish means.
#[derive(Debug)]
pub(crate) enum PublishFailure {
    /// The expected-last-sequence check failed: nothing was written by this attempt.
    Conflict,
    /// Nothing reached the stream's subjects: there is no stream for the subject.
    NoStream,
    /// The outcome is unknown or the server was not ready; sending the same message again is
    /// safe when it carries a message id or an expected sequence.
    Retryable(BoxError),
    /// Anything else.
    Failed(BoxError),
}

/// Pause after the n-th failed send (n from 1) before the next: 50 ms, 100 ms, 200 ms, …,
/// at most 1 s.
pub(crate) fn retry_delay(attempt: u32) -> Duration {
    Duration::from_millis(25u64 << attempt.min(6)).min(Duration::from_secs(1))
}

/// Publishes one message and waits for the stream's acknowledgement.
pub(crate) async fn publish(
    js: &jetstream::Context,
    subject: &str,
    message: PublishMessage,
) -> Result<PublishAck, PublishFailure> {
    let ack = js
        .send_publish(subject.to_owned(), message)
        .await
        .map_err(classify)?;
    ack.await.map_err(classify)
}

fn classify(error: PublishError) -> PublishFailure {
    match error.kind() {
        PublishErrorKind::WrongLastSequence => return PublishFailure::Conflict,
        PublishErrorKind::StreamNotFound => return PublishFailure::NoStream,
        PublishErrorKind::TimedOut
        | PublishErrorKind::BrokenPipe
        | PublishErrorKind::MaxAckPending => return PublishFailure::Retryable(error.into()),
        PublishErrorKind::WrongLastMessageId
        | PublishErrorKind::MaxPayloadExceeded
        | PublishErrorKind::Other => {}
    }
    match server_error_code(&error) {
        Some(code) if code == WRONG_LAST_SEQUENCE || code == WRONG_LAST_SEQUENCE_IN_FLIGHT => {
            PublishFailure::Conflict
        }
        Some(code) if code == EXPECTED_LAST_SEQUENCE_NOT_READY || code == DUPLICATE_IN_FLIGHT => {
            PublishFailure::Retryable(error.into())
        }
        _ => PublishFailure::Failed(error.into()),
    }
}

/// The JetStream error code in an error's source chain, if the server sent one.
fn server_error_code(error: &(dyn std::error::Error + 'static)) -> Option<ErrorCode> {
    let mut current = Some(error);
    while let Some(err) = current {
        if let Some(server) = err.downcast_ref::<jetstream::Error>() {
            return Some(server.error_code());
        }
        current = err.source();
    }
    None
}

/// Whether a JetStream API error says the stream does not exist.
pub(crate) fn is_stream_not_found(error: &jetstream::Error) -> bool {
    error.error_code() == ErrorCode::STREAM_NOT_FOUND
}
