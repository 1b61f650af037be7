//! Whether a stream exists and can serve requests yet.
//!
//! Owns: reading a stream's info and telling apart missing, leaderless and ready streams, and
//! waiting for a new stream's first leader.
//!
//! Must not: create or change streams. Why it exists: on a cluster, a request to a stream that
//! is assigned but has no leader yet (just created by another client, or electing) is not
//! answered at all, so the caller would wait out a whole request timeout.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, context::GetStreamErrorKind, stream::Info};

use crate::publish::{is_stream_not_found, retry_delay};

/// What the server says about a stream.
#[derive(Debug)]
pub(crate) enum StreamState {
    /// No such stream.
    Missing,
    /// It exists but has no leader to answer requests yet.
    Leaderless,
    /// It exists and has a leader (or the server is not clustered).
    Ready(Box<Info>),
}

/// Asks the server about `stream`.
pub(crate) async fn stream_state(
    js: &jetstream::Context,
    stream: &str,
) -> Result<StreamState, jetstream::context::GetStreamError> {
    match js.get_stream(stream).await {
        Ok(handle) => {
            let info = handle.cached_info();
            Ok(if has_leader(info) {
                StreamState::Ready(Box::new(info.clone()))
            } else {
                StreamState::Leaderless
            })
        }
        Err(err) => match err.kind() {
            GetStreamErrorKind::JetStream(js_err) if is_stream_not_found(&js_err) => {
                Ok(StreamState::Missing)
            }
            _ => Err(err),
        },
    }
}

/// Whether the stream's info names a leader; a server that is not clustered reports none and
/// always serves its streams.
pub(crate) fn has_leader(info: &Info) -> bool {
    info.cluster
        .as_ref()
        .is_none_or(|cluster| cluster.leader.is_some())
}

/// Waits up to `patience` for `stream` to be ready; returns its last state.
pub(crate) async fn wait_until_ready(
    js: &jetstream::Context,
    stream: &str,
    patience: Duration,
) -> Result<StreamState, jetstream::context::GetStreamError> {
    let deadline = Instant::now() + patience;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let state = stream_state(js, stream).await?;
        if !matches!(state, StreamState::Leaderless) || Instant::now() >= deadline {
            return Ok(state);
        }
        tokio::time::sleep(retry_delay(attempt)).await;
    }
}
