//! `ConformanceServer`: the rmcp `ServerHandler` of one MCP session. It advertises the
//! capabilities the suite expects, keeps the session's state (log level, resource
//! subscriptions, whether the dynamic tool is listed) and hands each request to `tools`,
//! `resources` or `prompts`.
//!
//! Owns: capabilities, the protocol versions offered (2025-06-18 and 2025-11-25), the
//! per-session state, and filtering log notifications by the level the client set.
//!
//! Must not: hold state across sessions (rmcp makes one handler per session), or know the
//! fixture surface itself; that lives in `tools`, `resources` and `prompts`.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult,
    GetPromptRequestParams, GetPromptResponse, Implementation, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, LoggingLevel,
    LoggingMessageNotificationParam, PaginatedRequestParams, ProtocolVersion,
    ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities, ServerConfig,
    SetLevelRequestParams, SubscribeRequestParams, UnsubscribeRequestParams,
};
use rmcp::service::{Peer, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};

use crate::sessions::Sessions;
use crate::{prompts, resources, tools};

/// The name the fixture gives itself in `initialize`.
const SERVER_NAME: &str = "portcullis-conformance-upstream";
/// The protocol revisions offered, newest last: the two of the era of `initialize` and
/// `Mcp-Session-Id` that the conformance suite tests.
const PROTOCOLS: [ProtocolVersion; 2] =
    [ProtocolVersion::V_2025_06_18, ProtocolVersion::V_2025_11_25];
const NEWEST_PROTOCOL: ProtocolVersion = ProtocolVersion::V_2025_11_25;
/// Logger name on the fixture's log notifications.
const LOGGER: &str = "conformance-upstream";

/// One session's handler.
#[derive(Debug)]
pub(crate) struct ConformanceServer {
    /// Shared by all sessions; `test_reconnection` closes its stream through it.
    pub(crate) sessions: Arc<Sessions>,
    state: SessionState,
}

/// What one session remembers.
#[derive(Debug)]
struct SessionState {
    /// The least severe level still sent; `logging/setLevel` changes it.
    log_level: Mutex<LoggingLevel>,
    /// Resource URIs the client subscribed to.
    subscriptions: Mutex<BTreeSet<String>>,
    /// Whether `test_dynamic_tool` is listed; `test_toggle_dynamic_tool` flips it.
    dynamic_tool_listed: AtomicBool,
    /// How often `test://watched-resource` changed; part of its text.
    watched_revision: AtomicU64,
}

impl ConformanceServer {
    pub(crate) fn new(sessions: Arc<Sessions>) -> Self {
        Self {
            sessions,
            state: SessionState {
                // Until the client picks a level, everything but debug chatter is sent.
                log_level: Mutex::new(LoggingLevel::Info),
                subscriptions: Mutex::default(),
                dynamic_tool_listed: AtomicBool::new(false),
                watched_revision: AtomicU64::new(0),
            },
        }
    }

    /// Sends `message` as a log notification at `level`, unless the client asked for less.
    pub(crate) async fn log(&self, peer: &Peer<RoleServer>, level: LoggingLevel, message: &str) {
        let threshold = *lock(&self.state.log_level);
        if severity(level) < severity(threshold) {
            return;
        }
        let notification =
            LoggingMessageNotificationParam::new(level, serde_json::Value::from(message))
                .with_logger(LOGGER);
        if let Err(err) = peer.notify_logging_message(notification).await {
            tracing::warn!(error = %err, "Could not send a log notification.");
        }
    }

    /// Flips whether `test_dynamic_tool` is listed; returns whether it is now.
    pub(crate) fn toggle_dynamic_tool(&self) -> bool {
        !self
            .state
            .dynamic_tool_listed
            .fetch_xor(true, Ordering::Relaxed)
    }

    /// Whether `test_dynamic_tool` is listed.
    pub(crate) fn dynamic_tool_listed(&self) -> bool {
        self.state.dynamic_tool_listed.load(Ordering::Relaxed)
    }

    /// The current revision of `test://watched-resource`.
    pub(crate) fn watched_revision(&self) -> u64 {
        self.state.watched_revision.load(Ordering::Relaxed)
    }

    /// Changes `test://watched-resource`; returns the new revision.
    pub(crate) fn bump_watched_revision(&self) -> u64 {
        self.state.watched_revision.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Whether the client subscribed to `uri`.
    pub(crate) fn is_subscribed(&self, uri: &str) -> bool {
        lock(&self.state.subscriptions).contains(uri)
    }
}

impl ServerHandler for ConformanceServer {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_logging()
            .enable_completions()
            .enable_prompts()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_resources_list_changed()
            .enable_tools()
            .enable_tool_list_changed()
            .build();
        ServerConfig::new(capabilities)
            .with_protocol_version(NEWEST_PROTOCOL)
            .with_server_info(Implementation::new(SERVER_NAME, env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Test fixture: implements the server surface of @modelcontextprotocol/conformance.",
            )
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(&PROTOCOLS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools::list(
            self.dynamic_tool_listed(),
        )))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        tools::call(self, request, context).await.map(Into::into)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(resources::list()))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        resources::read(&request.uri, self.watched_revision()).map(Into::into)
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        resources::ensure_exists(&request.uri)?;
        lock(&self.state.subscriptions).insert(request.uri.clone());
        let message = format!("Subscribed to resource: {}", request.uri);
        self.log(&context.peer, LoggingLevel::Info, &message).await;
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        lock(&self.state.subscriptions).remove(&request.uri);
        let message = format!("Unsubscribed from resource: {}", request.uri);
        self.log(&context.peer, LoggingLevel::Info, &message).await;
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(prompts::list()))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        prompts::get(&request.name, request.arguments.as_ref()).map(Into::into)
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let values = match &request.r#ref {
            rmcp::model::Reference::Prompt(prompt) => {
                prompts::complete(&prompt.name, &request.argument)
            }
            rmcp::model::Reference::Resource(template) => {
                resources::complete(&template.uri, &request.argument)
            }
            // A kind of reference newer than this fixture: nothing to offer.
            _ => Vec::new(),
        };
        let completion = rmcp::model::CompletionInfo::new(values)
            .map_err(|reason| ErrorData::internal_error(reason, None))?;
        Ok(CompleteResult::new(completion))
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        *lock(&self.state.log_level) = request.level;
        Ok(())
    }
}

/// RFC 5424 order, least severe first (rmcp's `LoggingLevel` has no ordering).
fn severity(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

/// The guarded data even if a handler panicked holding the lock: each update is a single
/// assignment, insert or remove, so the data cannot be half-changed.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
