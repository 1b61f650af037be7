//! A small MCP client over Streamable HTTP (legacy era, 2025-06-18 / 2025-11-25): POST one
//! JSON-RPC message per request, read an `application/json` or `text/event-stream` answer,
//! carry `Mcp-Session-Id` and `MCP-Protocol-Version`, end the session with DELETE.
//!
//! Hand-written rather than rmcp's client on purpose: discovery must keep each tool's raw
//! JSON (rmcp's typed model drops unknown fields, and the schema hash must cover what the
//! upstream really sent); it must tell an admin exactly what was wrong (HTTP status, content
//! type, malformed JSON-RPC), which rmcp folds into generic transport errors; every request
//! must go through the SSRF-guarded client with body-size limits; and the subset needed
//! (initialize, one notification, paged tools/list, DELETE) is small next to rmcp's build
//! cost and API churn.

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use url::Url;

use crate::discover::DiscoverError;
use crate::http::{Egress, HttpFailure, loggable_url, printable_excerpt};
use crate::secret::Secret;
use crate::www_authenticate::parse_bearer_challenge;

/// The protocol version the gateway asks for in `initialize`.
pub(crate) const REQUESTED_PROTOCOL_VERSION: &str = "2025-11-25";

/// Versions the gateway accepts in the `initialize` answer.
pub(crate) const SUPPORTED_PROTOCOL_VERSIONS: [&str; 4] =
    ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

const SESSION_HEADER: &str = "mcp-session-id";
const PROTOCOL_HEADER: &str = "mcp-protocol-version";
/// Longest session id accepted from an upstream.
const MAX_SESSION_ID_LEN: usize = 1024;

/// One client session with one upstream endpoint.
#[derive(Debug)]
pub(crate) struct McpSession<'a> {
    egress: &'a Egress,
    url: &'a Url,
    bearer: Option<&'a Secret>,
    session_id: Option<HeaderValue>,
    protocol_version: Option<String>,
    next_id: u64,
    max_response_bytes: usize,
}

impl<'a> McpSession<'a> {
    pub(crate) fn new(
        egress: &'a Egress,
        url: &'a Url,
        bearer: Option<&'a Secret>,
        max_response_bytes: usize,
    ) -> Self {
        McpSession {
            egress,
            url,
            bearer,
            session_id: None,
            protocol_version: None,
            next_id: 1,
            max_response_bytes,
        }
    }

    /// `initialize` then `notifications/initialized`; returns the `InitializeResult`.
    pub(crate) async fn initialize(
        &mut self,
        client_name: &str,
        client_version: &str,
    ) -> Result<Value, DiscoverError> {
        // Every client capability is declared, so servers that list some tools only to
        // capable clients (elicitation, sampling, roots) show the whole catalog; discovery
        // never calls a tool, so no server request should follow, and any that does is
        // skipped unanswered.
        let params = json!({
            "protocolVersion": REQUESTED_PROTOCOL_VERSION,
            "capabilities": {"elicitation": {}, "sampling": {}, "roots": {}},
            "clientInfo": {"name": client_name, "version": client_version},
        });
        let result = self.request("initialize", params).await?;
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| self.not_mcp("the initialize result has no protocolVersion"))?;
        if !SUPPORTED_PROTOCOL_VERSIONS.contains(&version) {
            return Err(self.not_mcp(format!(
                "the server chose protocol version {version:?}, which the gateway does not \
                 speak (it speaks {})",
                SUPPORTED_PROTOCOL_VERSIONS.join(", ")
            )));
        }
        self.protocol_version = Some(version.to_owned());
        self.notify("notifications/initialized").await?;
        Ok(result)
    }

    /// The endpoint.
    pub(crate) fn url(&self) -> &Url {
        self.url
    }

    /// Sends one request and waits for its response (the result, or a JSON-RPC error).
    pub(crate) async fn request(
        &mut self,
        method: &'static str,
        params: Value,
    ) -> Result<Value, DiscoverError> {
        let id = self.next_id;
        self.next_id += 1;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let response = self.post(&body, method).await?;
        if method == "initialize"
            && let Some(session_id) = response.headers().get(SESSION_HEADER)
        {
            let valid = session_id.len() <= MAX_SESSION_ID_LEN
                && session_id
                    .as_bytes()
                    .iter()
                    .all(|b| (0x21..=0x7e).contains(b));
            if !valid {
                return Err(self
                    .not_mcp("the Mcp-Session-Id header is not 1-1024 visible ASCII characters"));
            }
            self.session_id = Some(session_id.clone());
        }
        self.read_response(response, id, method).await
    }

    /// Sends a notification; the server answers 202 (any 2xx is accepted).
    pub(crate) async fn notify(&mut self, method: &'static str) -> Result<(), DiscoverError> {
        let body = json!({"jsonrpc": "2.0", "method": method});
        let mut response = self.post(&body, method).await?;
        let status = response.status();
        if !status.is_success() {
            return Err(self.status_error(response, method).await);
        }
        // Drain a (normally empty) body within the limit so the connection can be reused.
        let _ = self
            .egress
            .read_body(&mut response, self.max_response_bytes)
            .await;
        Ok(())
    }

    /// Ends the session with DELETE, best effort: a server may answer 405, or be gone.
    pub(crate) async fn close(self) {
        let Some(session_id) = self.session_id.clone() else {
            return;
        };
        let request = match self.egress.request(Method::DELETE, self.url) {
            Ok(request) => request,
            Err(_) => return,
        };
        let request = self
            .with_headers(request)
            .header(SESSION_HEADER, session_id);
        match self.egress.send(request).await {
            Ok(response) => tracing::debug!(
                url = loggable_url(self.url.as_str()),
                status = response.status().as_u16(),
                "Upstream MCP session closed."
            ),
            Err(error) => tracing::debug!(
                url = loggable_url(self.url.as_str()),
                error = %error,
                "Closing the upstream MCP session failed."
            ),
        }
    }

    fn with_headers(&self, mut request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        if let Some(version) = &self.protocol_version
            && let Ok(value) = HeaderValue::from_str(version)
        {
            headers.insert(PROTOCOL_HEADER, value);
        }
        if let Some(session_id) = &self.session_id {
            headers.insert(SESSION_HEADER, session_id.clone());
        }
        request = request.headers(headers);
        if let Some(token) = self.bearer {
            request = request.header(AUTHORIZATION, format!("Bearer {}", token.expose()));
        }
        request
    }

    async fn post(&self, body: &Value, method: &'static str) -> Result<Response, DiscoverError> {
        let request = self
            .egress
            .request(Method::POST, self.url)
            .map_err(|failure| self.http_error(failure, method))?;
        let request = self
            .with_headers(request)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
        self.egress
            .send(request)
            .await
            .map_err(|failure| self.http_error(failure, method))
    }

    async fn read_response(
        &self,
        mut response: Response,
        id: u64,
        method: &'static str,
    ) -> Result<Value, DiscoverError> {
        if !response.status().is_success() {
            return Err(self.status_error(response, method).await);
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(|value| {
                value
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            });
        match content_type.as_deref() {
            Some("application/json") => {
                let body = self
                    .egress
                    .read_body(&mut response, self.max_response_bytes)
                    .await
                    .map_err(|failure| self.http_error(failure, method))?;
                let message: Value = serde_json::from_slice(&body).map_err(|error| {
                    self.not_mcp(format!("the answer to {method} is not valid JSON: {error}"))
                })?;
                match self.match_response(&message, id, method)? {
                    Some(result) => result,
                    None => Err(self.not_mcp(format!(
                        "the answer to {method} is not the JSON-RPC response to request {id}: {}",
                        printable_excerpt(&body, 200)
                    ))),
                }
            }
            Some("text/event-stream") => self.read_event_stream(response, id, method).await,
            other => Err(self.not_mcp(format!(
                "{method} was answered with content type {}, not application/json or \
                 text/event-stream",
                other.unwrap_or("(none)")
            ))),
        }
    }

    /// Reads SSE events until the response to `id`; notifications and server requests on the
    /// way are skipped (discovery calls no tool, so none should come).
    async fn read_event_stream(
        &self,
        mut response: Response,
        id: u64,
        method: &'static str,
    ) -> Result<Value, DiscoverError> {
        let mut buffer: Vec<u8> = Vec::new();
        let mut total = 0usize;
        loop {
            let chunk = response
                .chunk()
                .await
                .map_err(|error| self.http_error(self.egress.failure(error), method))?;
            let Some(chunk) = chunk else {
                return Err(self.not_mcp(format!(
                    "the event stream answering {method} ended before the response"
                )));
            };
            total += chunk.len();
            if total > self.max_response_bytes {
                return Err(self.http_error(
                    HttpFailure::TooLarge {
                        limit: self.max_response_bytes,
                    },
                    method,
                ));
            }
            buffer.extend(chunk.iter().filter(|b| **b != b'\r'));
            while let Some(end) = find_event_end(&buffer) {
                let event: Vec<u8> = buffer.drain(..end + 2).collect();
                let Some(data) = event_data(&event) else {
                    continue;
                };
                let message: Value = serde_json::from_str(&data).map_err(|error| {
                    self.not_mcp(format!(
                        "the event stream answering {method} carried data that is not JSON: \
                         {error}"
                    ))
                })?;
                if let Some(result) = self.match_response(&message, id, method)? {
                    return result;
                }
            }
        }
    }

    /// `Some` if `message` is the response to `id` (its result or its error), `None` if it is
    /// some other message.
    fn match_response(
        &self,
        message: &Value,
        id: u64,
        method: &'static str,
    ) -> Result<Option<Result<Value, DiscoverError>>, DiscoverError> {
        if message.is_array() {
            return Err(self.not_mcp(format!(
                "{method} was answered with a JSON-RPC batch; MCP has had no batches since \
                 2025-06-18"
            )));
        }
        let Some(object) = message.as_object() else {
            return Err(self.not_mcp(format!(
                "{method} was answered with JSON that is not a JSON-RPC message"
            )));
        };
        if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return Err(self.not_mcp(format!(
                "{method} was answered with a message that lacks \"jsonrpc\": \"2.0\""
            )));
        }
        if object.contains_key("method") || object.get("id") != Some(&json!(id)) {
            return Ok(None);
        }
        if let Some(error) = object.get("error") {
            let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("(no message)");
            return Ok(Some(Err(DiscoverError::ServerError {
                url: self.url.to_string(),
                method,
                code,
                message: printable_excerpt(message.as_bytes(), 300),
            })));
        }
        match object.get("result") {
            Some(result) => Ok(Some(Ok(result.clone()))),
            None => Err(self.not_mcp(format!(
                "the response to {method} has neither result nor error"
            ))),
        }
    }

    async fn status_error(&self, response: Response, method: &'static str) -> DiscoverError {
        let status = response.status();
        let challenge = parse_bearer_challenge(
            response
                .headers()
                .get_all(reqwest::header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|value| value.to_str().ok()),
        );
        let insufficient_scope = challenge
            .as_ref()
            .is_some_and(|c| c.error.as_deref() == Some("insufficient_scope"));
        if status == StatusCode::UNAUTHORIZED
            || (status == StatusCode::FORBIDDEN && insufficient_scope)
        {
            let challenge = challenge.unwrap_or_default();
            return DiscoverError::AuthorizationRequired {
                url: self.url.to_string(),
                resource_metadata: challenge.resource_metadata,
                scope: challenge.scope,
                error: challenge.error,
                error_description: challenge.error_description,
            };
        }
        if status.is_redirection() {
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("(no Location header)")
                .to_owned();
            return self.not_mcp(format!(
                "{method} was redirected ({status}) to {location}; redirects are not followed, \
                 so give the final URL"
            ));
        }
        let hint = match status {
            StatusCode::NOT_FOUND => " (is the path right? MCP endpoints are often at /mcp)",
            StatusCode::METHOD_NOT_ALLOWED => " (the URL does not accept POST)",
            StatusCode::NOT_ACCEPTABLE | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                " (the server does not accept MCP's JSON and event-stream media types)"
            }
            StatusCode::FORBIDDEN => {
                " (the server refused the gateway; it may check Host or Origin)"
            }
            _ => "",
        };
        let failure = self.egress.status_failure(response).await;
        self.not_mcp(format!("{method} got {failure}{hint}"))
    }

    fn not_mcp(&self, detail: impl Into<String>) -> DiscoverError {
        DiscoverError::NotMcp {
            url: self.url.to_string(),
            detail: detail.into(),
        }
    }

    fn http_error(&self, failure: HttpFailure, method: &'static str) -> DiscoverError {
        DiscoverError::from_http(self.url.as_str(), method, failure)
    }
}

/// Index of the blank line that ends the first complete event (after `\r` removal).
fn find_event_end(buffer: &[u8]) -> Option<usize> {
    buffer.windows(2).position(|pair| pair == b"\n\n")
}

/// The joined `data:` lines of one SSE event, or `None` for an event without data (a priming
/// event, a comment, or an event type other than `message`).
fn event_data(event: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(event);
    let mut data: Vec<&str> = Vec::new();
    let mut event_type = "message";
    for line in text.split('\n') {
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => data.push(value),
            "event" => event_type = value,
            _ => {}
        }
    }
    let data = data.join("\n");
    (event_type == "message" && !data.trim().is_empty()).then_some(data)
}

#[cfg(test)]
mod tests;
