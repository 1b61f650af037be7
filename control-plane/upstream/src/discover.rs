//! Tool discovery: connect to an upstream MCP server over Streamable HTTP, `initialize`, list
//! every tool across all pages, and suggest a trust level for each with the domain classifier.
//!
//! Bounded everywhere: the URL passes the SSRF guard first; connect, per-request and overall
//! timeouts; a byte limit on every response; a cap on pages and on tools. The session is
//! closed with DELETE whatever the outcome.

use std::collections::HashSet;
use std::time::Duration;

use portcullis_domain::classify::{ToolAnnotationsInput, classify};
use portcullis_proto::TrustLevel;
use serde_json::{Value, json};

use crate::http::{Egress, HttpFailure, HttpLimits, loggable_url};
use crate::mcp_client::McpSession;
use crate::schema_hash::schema_sha256;
use crate::secret::Secret;
use crate::url_guard::{UrlPolicy, UrlRejected};

/// Limits and identity of one discovery. `Default` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct DiscoverOptions {
    /// TCP (and TLS) connect timeout. Default: 5 s.
    pub connect_timeout: Duration,
    /// Timeout of one HTTP exchange, body included. Default: 15 s.
    pub request_timeout: Duration,
    /// Timeout of the whole discovery. Default: 60 s.
    pub total_timeout: Duration,
    /// Largest response body accepted, in bytes. Default: 4 MiB.
    pub max_response_bytes: usize,
    /// Most `tools/list` pages followed. Default: 50.
    pub max_pages: usize,
    /// Most tools accepted. Default: 1000.
    pub max_tools: usize,
    /// `clientInfo.name` sent in `initialize`. Default: `portcullis`.
    pub client_name: String,
}

impl Default for DiscoverOptions {
    fn default() -> Self {
        DiscoverOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            total_timeout: Duration::from_secs(60),
            max_response_bytes: 4 * 1024 * 1024,
            max_pages: 50,
            max_tools: 1000,
            client_name: "portcullis".to_owned(),
        }
    }
}

/// What an upstream offers.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Discovery {
    /// The URL that was discovered.
    pub url: String,
    /// The protocol version the server chose.
    pub protocol_version: String,
    /// The server's `serverInfo`.
    pub server: ServerInfo,
    /// The server's `instructions`, if any.
    pub instructions: Option<String>,
    /// Every tool, in the order the server listed them.
    pub tools: Vec<DiscoveredTool>,
}

/// The server's self-description from `initialize`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ServerInfo {
    /// `serverInfo.name` (empty if the server sent none).
    pub name: String,
    /// `serverInfo.version`.
    pub version: Option<String>,
    /// `serverInfo.title`.
    pub title: Option<String>,
}

/// One tool as listed, with its schema hash and suggested trust level.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DiscoveredTool {
    /// The tool's name.
    pub name: String,
    /// `title` (or `annotations.title`), if any.
    pub title: Option<String>,
    /// `description`, if any.
    pub description: Option<String>,
    /// `inputSchema` as sent.
    pub input_schema: Value,
    /// Lower-case hex SHA-256 of the canonical `inputSchema` (`schema_hash`).
    pub input_schema_sha256: String,
    /// The tool's annotations (hints from the upstream, untrusted).
    pub annotations: Option<ToolAnnotations>,
    /// The classifier's suggestion.
    pub suggested_level: TrustLevel,
    /// The name keyword behind the suggestion, if any.
    pub matched_keyword: Option<&'static str>,
    /// Why the classifier chose the level.
    pub classification_reason: String,
    /// The tool object exactly as the upstream sent it.
    pub raw: Value,
}

/// MCP `ToolAnnotations`; each is a hint the upstream may get wrong.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolAnnotations {
    /// `title`.
    pub title: Option<String>,
    /// `readOnlyHint`.
    pub read_only_hint: Option<bool>,
    /// `destructiveHint`.
    pub destructive_hint: Option<bool>,
    /// `idempotentHint`.
    pub idempotent_hint: Option<bool>,
    /// `openWorldHint`.
    pub open_world_hint: Option<bool>,
}

/// Why discovery failed. Messages are written for an admin.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// The SSRF guard refused the URL (a 400 naming the field `url` at the API).
    #[error(transparent)]
    Rejected(#[from] UrlRejected),
    /// Could not connect, or the connection broke.
    #[error("could not reach {url}: {detail}")]
    Unreachable {
        /// The upstream URL.
        url: String,
        /// The innermost cause.
        detail: String,
        /// The client's error.
        #[source]
        source: reqwest::Error,
    },
    /// No answer in time.
    #[error("{url} did not answer {stage} within {after:?}")]
    Timeout {
        /// The upstream URL.
        url: String,
        /// What was waited for (`initialize`, `tools/list`, `discovery`).
        stage: &'static str,
        /// The limit.
        after: Duration,
    },
    /// Something answered, but not as an MCP Streamable HTTP endpoint.
    #[error("{url} is not an MCP Streamable HTTP endpoint: {detail}")]
    NotMcp {
        /// The upstream URL.
        url: String,
        /// What was wrong: status, content type, JSON-RPC shape.
        detail: String,
    },
    /// The upstream wants an OAuth access token (401, or 403 `insufficient_scope`).
    #[error(
        "{url} requires authorization{}; connect it with OAuth",
        error_description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
    )]
    AuthorizationRequired {
        /// The upstream URL.
        url: String,
        /// RFC 9728 metadata URL from `WWW-Authenticate`, if the server gave one.
        resource_metadata: Option<String>,
        /// Scopes the server asked for.
        scope: Option<String>,
        /// RFC 6750 error code.
        error: Option<String>,
        /// The server's error text.
        error_description: Option<String>,
    },
    /// The server answered with a JSON-RPC error.
    #[error("{url} answered {method} with JSON-RPC error {code}: {message}")]
    ServerError {
        /// The upstream URL.
        url: String,
        /// The request method.
        method: &'static str,
        /// The JSON-RPC error code.
        code: i64,
        /// The error message (printable excerpt).
        message: String,
    },
    /// A response, the page count or the tool count exceeded its limit.
    #[error("{url}: {detail}")]
    LimitExceeded {
        /// The upstream URL.
        url: String,
        /// Which limit.
        detail: String,
    },
    /// The HTTP client could not be set up (TLS trust store, for example).
    #[error("could not set up the HTTP client: {0}")]
    ClientSetup(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl DiscoverError {
    pub(crate) fn from_http(url: &str, stage: &'static str, failure: HttpFailure) -> Self {
        let url = url.to_owned();
        match failure {
            HttpFailure::Rejected(rejected) => DiscoverError::Rejected(rejected),
            HttpFailure::Timeout { after } => DiscoverError::Timeout { url, stage, after },
            HttpFailure::Transport { detail, source } => DiscoverError::Unreachable {
                url,
                detail,
                source,
            },
            failure @ HttpFailure::Status { .. } => DiscoverError::NotMcp {
                url,
                detail: format!("{stage} got {failure}"),
            },
            HttpFailure::TooLarge { limit } => DiscoverError::LimitExceeded {
                url,
                detail: format!("the answer to {stage} is larger than {limit} bytes"),
            },
            HttpFailure::ClientSetup(source) => DiscoverError::ClientSetup(source),
        }
    }
}

/// Discovers the tools of the MCP server at `url` without credentials.
pub async fn discover(
    url: &str,
    policy: UrlPolicy,
    options: &DiscoverOptions,
) -> Result<Discovery, DiscoverError> {
    run_discovery(url, None, policy, options).await
}

/// Discovers the tools of the MCP server at `url` with an OAuth access token (sent as
/// `Authorization: Bearer`).
pub async fn discover_with_token(
    url: &str,
    access_token: &Secret,
    policy: UrlPolicy,
    options: &DiscoverOptions,
) -> Result<Discovery, DiscoverError> {
    run_discovery(url, Some(access_token), policy, options).await
}

#[tracing::instrument(name = "upstream.discover", skip_all, fields(url = loggable_url(url)))]
async fn run_discovery(
    url: &str,
    bearer: Option<&Secret>,
    policy: UrlPolicy,
    options: &DiscoverOptions,
) -> Result<Discovery, DiscoverError> {
    let guarded = policy.validate(url).await?;
    let egress = Egress::new(
        policy,
        &[&guarded],
        HttpLimits {
            connect_timeout: options.connect_timeout,
            request_timeout: options.request_timeout,
        },
    )
    .map_err(|failure| DiscoverError::from_http(url, "discovery", failure))?;
    let mut session = McpSession::new(&egress, guarded.url(), bearer, options.max_response_bytes);
    let outcome = tokio::time::timeout(
        options.total_timeout,
        list_everything(&mut session, options),
    )
    .await
    .unwrap_or_else(|_| {
        Err(DiscoverError::Timeout {
            url: guarded.as_str().to_owned(),
            stage: "discovery",
            after: options.total_timeout,
        })
    });
    session.close().await;
    let (initialize, tools) = outcome?;
    let server_info = initialize.get("serverInfo");
    let text = |value: Option<&Value>, key: &str| {
        value
            .and_then(|v| v.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let discovery = Discovery {
        url: guarded.as_str().to_owned(),
        protocol_version: text(Some(&initialize), "protocolVersion").unwrap_or_default(),
        server: ServerInfo {
            name: text(server_info, "name").unwrap_or_default(),
            version: text(server_info, "version"),
            title: text(server_info, "title"),
        },
        instructions: text(Some(&initialize), "instructions"),
        tools,
    };
    tracing::info!(
        url = loggable_url(&discovery.url),
        tools = discovery.tools.len(),
        "Upstream tools discovered."
    );
    Ok(discovery)
}

async fn list_everything(
    session: &mut McpSession<'_>,
    options: &DiscoverOptions,
) -> Result<(Value, Vec<DiscoveredTool>), DiscoverError> {
    let initialize = session
        .initialize(&options.client_name, env!("CARGO_PKG_VERSION"))
        .await?;
    let url = session.url().to_string();
    let mut tools: Vec<DiscoveredTool> = Vec::new();
    let mut names: HashSet<String> = HashSet::new();
    let mut cursors: HashSet<String> = HashSet::new();
    let mut cursor: Option<String> = None;
    for page in 0.. {
        if page >= options.max_pages {
            return Err(DiscoverError::LimitExceeded {
                url,
                detail: format!("tools/list has more than {} pages", options.max_pages),
            });
        }
        let params = match &cursor {
            Some(cursor) => json!({"cursor": cursor}),
            None => json!({}),
        };
        let result = match session.request("tools/list", params).await {
            Ok(result) => result,
            // A server without tools may not implement tools/list at all.
            Err(DiscoverError::ServerError { code: -32601, .. }) if page == 0 => break,
            Err(error) => return Err(error),
        };
        let listed = result
            .get("tools")
            .and_then(Value::as_array)
            .ok_or_else(|| DiscoverError::NotMcp {
                url: url.clone(),
                detail: "the tools/list result has no \"tools\" array".to_owned(),
            })?;
        for raw in listed {
            let tool = parse_tool(raw).map_err(|detail| DiscoverError::NotMcp {
                url: url.clone(),
                detail,
            })?;
            if !names.insert(tool.name.clone()) {
                return Err(DiscoverError::NotMcp {
                    url,
                    detail: format!("tools/list lists the tool {:?} twice", tool.name),
                });
            }
            if tools.len() >= options.max_tools {
                return Err(DiscoverError::LimitExceeded {
                    url,
                    detail: format!("the server lists more than {} tools", options.max_tools),
                });
            }
            tools.push(tool);
        }
        match result.get("nextCursor") {
            None | Some(Value::Null) => break,
            Some(Value::String(next)) => {
                if !cursors.insert(next.clone()) {
                    return Err(DiscoverError::NotMcp {
                        url,
                        detail: format!("tools/list returned the cursor {next:?} twice"),
                    });
                }
                cursor = Some(next.clone());
            }
            Some(_) => {
                return Err(DiscoverError::NotMcp {
                    url,
                    detail: "tools/list returned a nextCursor that is not a string".to_owned(),
                });
            }
        }
    }
    Ok((initialize, tools))
}

/// Longest tool name accepted (MCP says names SHOULD be at most 128 characters).
const MAX_TOOL_NAME_LEN: usize = 256;

fn parse_tool(raw: &Value) -> Result<DiscoveredTool, String> {
    let name = raw
        .get("name")
        .and_then(Value::as_str)
        .filter(|name| !name.is_empty())
        .ok_or_else(|| "a tool in tools/list has no name".to_owned())?;
    if name.len() > MAX_TOOL_NAME_LEN {
        return Err(format!(
            "a tool name is {} bytes long; at most {MAX_TOOL_NAME_LEN} are accepted",
            name.len()
        ));
    }
    let input_schema = raw
        .get("inputSchema")
        .filter(|schema| schema.is_object())
        .cloned()
        .ok_or_else(|| format!("the tool {name:?} has no inputSchema object"))?;
    let annotations = raw
        .get("annotations")
        .and_then(Value::as_object)
        .map(|object| {
            let flag = |key: &str| object.get(key).and_then(Value::as_bool);
            ToolAnnotations {
                title: object
                    .get("title")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                read_only_hint: flag("readOnlyHint"),
                destructive_hint: flag("destructiveHint"),
                idempotent_hint: flag("idempotentHint"),
                open_world_hint: flag("openWorldHint"),
            }
        });
    let hints = annotations.as_ref().map(|a| ToolAnnotationsInput {
        read_only_hint: a.read_only_hint,
        destructive_hint: a.destructive_hint,
    });
    let classification = classify(name, hints.as_ref(), &input_schema);
    let text = |key: &str| raw.get(key).and_then(Value::as_str).map(str::to_owned);
    Ok(DiscoveredTool {
        name: name.to_owned(),
        title: text("title").or_else(|| annotations.as_ref().and_then(|a| a.title.clone())),
        description: text("description"),
        input_schema_sha256: schema_sha256(&input_schema),
        input_schema,
        annotations,
        suggested_level: classification.level,
        matched_keyword: classification.matched_keyword,
        classification_reason: classification.reason,
        raw: raw.clone(),
    })
}

#[cfg(test)]
mod tests;
