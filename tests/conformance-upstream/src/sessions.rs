//! The session manager: rmcp's in-memory `LocalSessionManager`, plus what `test_reconnection`
//! needs to exercise SEP-1699 polling: close the SSE stream of its own POST mid-call, wait
//! until the client resumes that stream with `GET` + `Last-Event-ID`, then answer on it.
//!
//! Owns: remembering which HTTP stream carries each in-flight `test_reconnection` call, and
//! noticing resumptions. Everything else is delegated to `LocalSessionManager` unchanged.
//!
//! Must not: change how any other request is routed or stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, RequestId, ServerJsonRpcMessage};
use rmcp::transport::WorkerTransport;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError, LocalSessionWorker, SessionConfig,
};
use rmcp::transport::streamable_http_server::session::{
    EventStore, RestoreOutcome, ServerSseMessage, SessionId, SessionManager,
};
use tokio::sync::Notify;
use tokio_stream::wrappers::ReceiverStream;

/// The only tool whose stream is tracked.
pub(crate) const RECONNECTION_TOOL: &str = "test_reconnection";

/// rmcp's number for one POST's SSE stream within a session (its event ids read
/// `<index>/<stream>`).
type StreamNumber = u64;

/// Sessions, with the streams of in-flight `test_reconnection` calls.
#[derive(Debug)]
pub(crate) struct Sessions {
    local: LocalSessionManager,
    /// The stream each in-flight `test_reconnection` call answers on, by session and JSON-RPC
    /// id; the tool takes its entry when it closes the stream.
    reconnection_streams: Mutex<HashMap<(SessionId, RequestId), StreamNumber>>,
    /// Streams `test_reconnection` closed and is waiting on, and whether the client resumed
    /// each yet; `resumed` wakes the waiting tools.
    closed_streams: Mutex<HashMap<(SessionId, StreamNumber), bool>>,
    resumed: Notify,
}

/// Why the stream of a `test_reconnection` call could not be closed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CloseStreamError {
    #[error("the request did not arrive on an SSE stream of a known session")]
    NoStream,
    #[error("the session could not close the stream: {0}")]
    Session(String),
}

impl Sessions {
    /// Sessions whose SSE streams open with a priming event carrying `sse_retry`.
    pub(crate) fn new(sse_retry: Duration) -> Self {
        let mut local = LocalSessionManager::default();
        let mut config = SessionConfig::default();
        config.sse_retry = Some(sse_retry);
        local.session_config = config;
        Self {
            local,
            reconnection_streams: Mutex::default(),
            closed_streams: Mutex::default(),
            resumed: Notify::new(),
        }
    }

    /// Closes the SSE stream that carries request `request` of `session` (sending a last
    /// priming event with `retry` first), keeping the session and the stream's cache so the
    /// client can resume it. Returns the stream's number for `wait_for_resumption`.
    pub(crate) async fn close_stream_of(
        &self,
        session: &SessionId,
        request: &RequestId,
        retry: Duration,
    ) -> Result<StreamNumber, CloseStreamError> {
        let stream = lock(&self.reconnection_streams)
            .remove(&(session.clone(), request.clone()))
            .ok_or(CloseStreamError::NoStream)?;
        let handle = self
            .local
            .sessions
            .read()
            .await
            .get(session)
            .cloned()
            .ok_or(CloseStreamError::NoStream)?;
        // Noted first: the client may resume as soon as the stream ends.
        lock(&self.closed_streams).insert((session.clone(), stream), false);
        if let Err(err) = handle.close_sse_stream(stream, Some(retry)).await {
            lock(&self.closed_streams).remove(&(session.clone(), stream));
            return Err(CloseStreamError::Session(err.to_string()));
        }
        Ok(stream)
    }

    /// Waits until the client resumes `stream` of `session`, closed by `close_stream_of`;
    /// false if it does not within `patience`. Either way the stream is forgotten.
    pub(crate) async fn wait_for_resumption(
        &self,
        session: &SessionId,
        stream: StreamNumber,
        patience: Duration,
    ) -> bool {
        let key = (session.clone(), stream);
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            // Registered before the check, so a resumption in between still wakes us.
            let resumed = self.resumed.notified();
            if lock(&self.closed_streams).get(&key) == Some(&true) {
                lock(&self.closed_streams).remove(&key);
                return true;
            }
            if tokio::time::timeout_at(deadline, resumed).await.is_err() {
                lock(&self.closed_streams).remove(&key);
                return false;
            }
        }
    }

    /// Remembers the stream of a `test_reconnection` call.
    fn track(&self, session: &SessionId, message: &ClientJsonRpcMessage, stream: StreamNumber) {
        if let ClientJsonRpcMessage::Request(request) = message
            && let ClientRequest::CallToolRequest(call) = &request.request
            && call.params.name == RECONNECTION_TOOL
        {
            lock(&self.reconnection_streams).insert((session.clone(), request.id.clone()), stream);
        }
    }
}

impl SessionManager for Sessions {
    type Error = LocalSessionManagerError;
    type Transport = WorkerTransport<LocalSessionWorker>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        self.local.create_session().await
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.local.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.local.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.local.close_session(id).await
    }

    /// `LocalSessionManager::create_stream`, noting the stream of a `test_reconnection` call.
    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let handle = self
            .local
            .sessions
            .read()
            .await
            .get(id)
            .cloned()
            .ok_or_else(|| LocalSessionManagerError::SessionNotFound(id.clone()))?;
        let receiver = handle.establish_request_wise_channel().await?;
        if let Some(stream) = receiver.http_request_id {
            self.track(id, &message, stream);
        }
        handle
            .push_message(message, receiver.http_request_id)
            .await?;
        Ok(ReceiverStream::new(receiver.inner))
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.local.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.local.create_standalone_stream(id).await
    }

    /// `LocalSessionManager::resume`, then wakes a `test_reconnection` waiting for it.
    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let stream = stream_of_event(&last_event_id);
        let resumed = self.local.resume(id, last_event_id).await?;
        let awaited = stream.is_some_and(|stream| {
            lock(&self.closed_streams)
                .get_mut(&(id.clone(), stream))
                .map(|resumed| *resumed = true)
                .is_some()
        });
        if awaited {
            self.resumed.notify_waiters();
        }
        Ok(resumed)
    }

    async fn restore_session(
        &self,
        id: SessionId,
    ) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        self.local.restore_session(id).await
    }

    fn event_store(&self) -> Option<Arc<dyn EventStore>> {
        self.local.event_store()
    }
}

/// The stream number in one of rmcp's event ids (`<index>/<stream>`); `None` for the
/// standalone stream's ids (`<index>`) or anything else.
fn stream_of_event(event_id: &str) -> Option<StreamNumber> {
    event_id.split_once('/')?.1.parse().ok()
}

/// The guarded data even if another thread panicked holding the lock: every update here is a
/// single insert or remove, so the data cannot be half-changed.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::stream_of_event;

    #[test]
    fn the_stream_is_read_from_request_stream_event_ids_only() {
        assert_eq!(stream_of_event("3/17"), Some(17));
        assert_eq!(stream_of_event("0/0"), Some(0));
        assert_eq!(stream_of_event("5"), None);
        assert_eq!(stream_of_event("x/y"), None);
    }
}
