//! The server aggregate (`evt.<host>.server.<server_id>`): an imported upstream MCP server,
//! its details and its tool catalog, with the admin's overrides.
//!
//! Trust levels arrive as given (the classifier lives elsewhere); this module only keeps the
//! rules: tools are valid and uniquely named, a level set by an admin is an override that a
//! refresh keeps, an upstream timeout is 1 to 3600 seconds or unset (the data plane's global
//! default), and a deleted server is gone for good (its id is never reused). The key's
//! uniqueness is the `server_key` reservation's job, not this aggregate's.

use std::collections::BTreeMap;

use portcullis_proto::TrustLevel;
use portcullis_proto::events::v1::{
    self as pb, AdminOverride, Classification, ClearTimeout, ServerDeleted, ServerDetailsChanged,
    ServerImported, ToolAdded, ToolChanged, ToolRemoved, classification, server_details_changed,
};

use crate::validate::{
    InvalidServerKey, InvalidText, InvalidTimeout, InvalidToolName, InvalidUrl,
    MAX_DESCRIPTION_CHARS, MAX_TOOL_DESCRIPTION_CHARS, MAX_TOOLS, validate_description,
    validate_name, validate_server_key, validate_server_url, validate_tool_name,
    validate_upstream_timeout,
};
use crate::{Aggregate, Decision, EventBody};

/// A server's state.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Server {
    /// Never imported.
    #[default]
    Absent,
    /// Imported.
    Live(LiveServer),
    /// Deleted for good.
    Deleted,
}

/// An imported server.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveServer {
    /// Its id.
    pub server_id: String,
    /// Its key in the host.
    pub key: String,
    /// The upstream URL.
    pub url: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: String,
    /// How long the data plane waits for the upstream's response head, in seconds; `None`
    /// for its global default.
    pub timeout_seconds: Option<u64>,
    /// Tools by name.
    pub tools: BTreeMap<String, pb::Tool>,
}

/// An admin's change to a server's upstream timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutChange {
    /// Wait this many seconds (1 to 3600) for the upstream's response head.
    Set(u64),
    /// Back to the data plane's global default.
    Clear,
}

/// What can be done to a server.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerCommand {
    /// Imports it with its (discovered, overridden) tools.
    Import {
        /// Its id (a ULID).
        server_id: String,
        /// Its key, already reserved.
        key: String,
        /// The upstream URL.
        url: String,
        /// Display name.
        name: String,
        /// Description.
        description: String,
        /// How the gateway authenticates upstream; `None` for no authentication.
        upstream_auth: Option<pb::UpstreamAuth>,
        /// Upstream timeout in seconds (1 to 3600); `None` for the data plane's default.
        timeout_seconds: Option<u64>,
        /// Its tools.
        tools: Vec<pb::Tool>,
    },
    /// Changes its name, description and/or upstream timeout.
    ChangeDetails {
        /// New name.
        name: Option<String>,
        /// New description.
        description: Option<String>,
        /// New upstream timeout, or back to the default; `None` leaves it as it is.
        timeout: Option<TimeoutChange>,
    },
    /// Adds a tool an admin describes.
    AddTool {
        /// The tool.
        tool: pb::Tool,
    },
    /// An admin's override of a tool's trust level and/or enabled flag.
    ChangeTool {
        /// The tool.
        name: String,
        /// New trust level (becomes an admin override).
        trust_level: Option<TrustLevel>,
        /// Enable or disable.
        enabled: Option<bool>,
    },
    /// Removes a tool.
    RemoveTool {
        /// The tool.
        name: String,
    },
    /// A refresh saw this tool upstream: add it, or update it keeping the admin's overrides.
    RefreshTool {
        /// The tool as discovered (auto-classified, enabled).
        discovered: pb::Tool,
    },
    /// A refresh no longer saw this tool upstream: remove it if still there.
    DropTool {
        /// The tool.
        name: String,
    },
    /// Deletes it for good.
    Delete,
}

/// What is wrong with a tool.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ToolProblem {
    /// Its name.
    #[error(transparent)]
    Name(InvalidToolName),
    /// Its description.
    #[error("description {0}")]
    Description(InvalidText),
    /// Its trust level is not low, medium or high.
    #[error("trust level must be low, medium or high")]
    TrustLevel,
    /// Its input schema hash is not SHA-256.
    #[error("input schema hash must be 32 bytes")]
    SchemaHash,
    /// It says nothing of how its level was decided.
    #[error("classification is missing")]
    Classification,
}

impl ToolProblem {
    /// The offending field of the tool, as the API names it.
    pub fn field(&self) -> &'static str {
        match self {
            ToolProblem::Name(_) => "name",
            ToolProblem::Description(_) => "description",
            ToolProblem::TrustLevel | ToolProblem::Classification => "trust_level",
            ToolProblem::SchemaHash => "input_schema_sha256",
        }
    }
}

/// Why a server command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServerRejected {
    /// The id is taken (now or in the past).
    #[error("server id is already taken")]
    AlreadyExists,
    /// Never imported, or deleted.
    #[error("server not found")]
    NotFound,
    /// The key is invalid.
    #[error("key: {0}")]
    InvalidKey(InvalidServerKey),
    /// The URL is invalid.
    #[error("url: {0}")]
    InvalidUrl(InvalidUrl),
    /// The name is invalid.
    #[error("name {0}")]
    InvalidName(InvalidText),
    /// The description is invalid.
    #[error("description {0}")]
    InvalidDescription(InvalidText),
    /// The upstream timeout is out of bounds.
    #[error("upstream timeout {0}")]
    InvalidTimeout(InvalidTimeout),
    /// A tool is invalid; `index` is its position in the command's list (0 for one tool).
    #[error("tool {index}: {problem}")]
    InvalidTool {
        /// Position in the list.
        index: usize,
        /// What is wrong.
        problem: ToolProblem,
    },
    /// Two tools share a name.
    #[error("tool {0:?} is listed twice")]
    DuplicateTool(String),
    /// More than `MAX_TOOLS` tools.
    #[error("a server may have at most {MAX_TOOLS} tools")]
    TooManyTools,
    /// A tool of that name exists already.
    #[error("tool {0:?} already exists")]
    ToolExists(String),
    /// No tool of that name.
    #[error("tool {0:?} not found")]
    UnknownTool(String),
}

/// The classification of a level an admin set.
pub fn admin_override() -> Classification {
    Classification {
        kind: Some(classification::Kind::AdminOverride(AdminOverride {})),
    }
}

/// Whether a tool's level was set by an admin.
pub fn is_admin_override(tool: &pb::Tool) -> bool {
    matches!(
        tool.classification.as_ref().and_then(|c| c.kind.as_ref()),
        Some(classification::Kind::AdminOverride(_))
    )
}

/// Checks one tool and returns it normalized (description trimmed).
pub fn check_tool(tool: &pb::Tool) -> Result<pb::Tool, ToolProblem> {
    validate_tool_name(&tool.name).map_err(ToolProblem::Name)?;
    let description = validate_description(&tool.description, MAX_TOOL_DESCRIPTION_CHARS)
        .map_err(ToolProblem::Description)?;
    if TrustLevel::try_from(tool.trust_level).is_err() {
        return Err(ToolProblem::TrustLevel);
    }
    if !(tool.input_schema_sha256.is_empty() || tool.input_schema_sha256.len() == 32) {
        return Err(ToolProblem::SchemaHash);
    }
    if tool
        .classification
        .as_ref()
        .and_then(|c| c.kind.as_ref())
        .is_none()
    {
        return Err(ToolProblem::Classification);
    }
    Ok(pb::Tool {
        description,
        ..tool.clone()
    })
}

/// Checks a list of tools: each valid, names unique, at most `MAX_TOOLS`.
pub fn check_tools(tools: &[pb::Tool]) -> Result<Vec<pb::Tool>, ServerRejected> {
    if tools.len() > MAX_TOOLS {
        return Err(ServerRejected::TooManyTools);
    }
    let mut seen = std::collections::BTreeSet::new();
    tools
        .iter()
        .enumerate()
        .map(|(index, tool)| {
            let tool = check_tool(tool)
                .map_err(|problem| ServerRejected::InvalidTool { index, problem })?;
            if !seen.insert(tool.name.clone()) {
                return Err(ServerRejected::DuplicateTool(tool.name));
            }
            Ok(tool)
        })
        .collect()
}

/// An admin's choice about one discovered tool at import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolOverride {
    /// The tool's name; must be among the discovered tools.
    pub name: String,
    /// Its trust level (becomes an admin override).
    pub trust_level: Option<TrustLevel>,
    /// Enable or disable it.
    pub enabled: Option<bool>,
}

/// Why overrides do not fit the discovered tools.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OverrideRejected {
    /// The override at `index` names no discovered tool.
    #[error("tools[{index}]: no discovered tool is named {name:?}")]
    UnknownTool {
        /// Position of the override.
        index: usize,
        /// The name it gave.
        name: String,
    },
    /// Two overrides name the same tool.
    #[error("tools[{index}]: tool {name:?} is overridden twice")]
    Duplicate {
        /// Position of the second override.
        index: usize,
        /// The name.
        name: String,
    },
}

/// Applies an admin's overrides to discovered tools: a level becomes an admin override, the
/// enabled flag is set as given. Every override must name a discovered tool.
pub fn apply_overrides(
    mut discovered: Vec<pb::Tool>,
    overrides: &[ToolOverride],
) -> Result<Vec<pb::Tool>, OverrideRejected> {
    let mut seen = std::collections::BTreeSet::new();
    for (index, choice) in overrides.iter().enumerate() {
        if !seen.insert(choice.name.as_str()) {
            return Err(OverrideRejected::Duplicate {
                index,
                name: choice.name.clone(),
            });
        }
        let Some(tool) = discovered.iter_mut().find(|t| t.name == choice.name) else {
            return Err(OverrideRejected::UnknownTool {
                index,
                name: choice.name.clone(),
            });
        };
        if let Some(level) = choice.trust_level {
            tool.trust_level = level.into();
            tool.classification = Some(admin_override());
        }
        if let Some(enabled) = choice.enabled {
            tool.enabled = enabled;
        }
    }
    Ok(discovered)
}

/// A discovered tool merged into the one the server has: upstream facts (description,
/// schema) from `discovered`; the enabled flag always kept (only admins set it); the level and
/// classification kept when an admin overrode them, else taken from `discovered`.
pub fn merge_discovered(existing: &pb::Tool, discovered: &pb::Tool) -> pb::Tool {
    let (trust_level, classification) = if is_admin_override(existing) {
        (existing.trust_level, existing.classification.clone())
    } else {
        (discovered.trust_level, discovered.classification.clone())
    };
    pb::Tool {
        name: existing.name.clone(),
        description: discovered.description.clone(),
        input_schema_sha256: discovered.input_schema_sha256.clone(),
        trust_level,
        enabled: existing.enabled,
        classification,
    }
}

/// What a refresh will do, by tool name (each list sorted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RefreshPlan {
    /// Discovered tools the server does not have.
    pub added: Vec<String>,
    /// Tools whose merged form differs from what the server has.
    pub changed: Vec<String>,
    /// Tools the upstream no longer lists.
    pub removed: Vec<String>,
}

impl LiveServer {
    /// Compares a new discovery with the catalog. `discovered` must have passed `check_tools`.
    pub fn plan_refresh(&self, discovered: &[pb::Tool]) -> RefreshPlan {
        let mut plan = RefreshPlan::default();
        for tool in discovered {
            match self.tools.get(&tool.name) {
                None => plan.added.push(tool.name.clone()),
                Some(existing) => {
                    if &merge_discovered(existing, tool) != existing {
                        plan.changed.push(tool.name.clone());
                    }
                }
            }
        }
        plan.removed = self
            .tools
            .keys()
            .filter(|name| !discovered.iter().any(|t| &t.name == *name))
            .cloned()
            .collect();
        plan.added.sort();
        plan.changed.sort();
        plan
    }
}

impl Aggregate for Server {
    type Command = ServerCommand;
    type Rejection = ServerRejected;

    fn evolve(self, event: &EventBody) -> Self {
        match (self, event) {
            (Server::Absent, EventBody::ServerImported(e)) => Server::Live(LiveServer {
                server_id: e.server_id.clone(),
                key: e.key.clone(),
                url: e.url.clone(),
                name: e.name.clone(),
                description: e.description.clone(),
                timeout_seconds: e.timeout_seconds,
                tools: e
                    .tools
                    .iter()
                    .map(|t| (t.name.clone(), t.clone()))
                    .collect(),
            }),
            (Server::Live(mut server), EventBody::ServerDetailsChanged(e)) => {
                if let Some(name) = &e.name {
                    server.name.clone_from(name);
                }
                if let Some(description) = &e.description {
                    server.description.clone_from(description);
                }
                match e.timeout {
                    Some(server_details_changed::Timeout::TimeoutSeconds(seconds)) => {
                        server.timeout_seconds = Some(seconds);
                    }
                    Some(server_details_changed::Timeout::ClearTimeout(_)) => {
                        server.timeout_seconds = None;
                    }
                    None => {}
                }
                Server::Live(server)
            }
            (Server::Live(mut server), EventBody::ToolAdded(e)) => {
                if let Some(tool) = &e.tool {
                    server.tools.insert(tool.name.clone(), tool.clone());
                }
                Server::Live(server)
            }
            (Server::Live(mut server), EventBody::ToolChanged(e)) => {
                if let Some(tool) = server.tools.get_mut(&e.name) {
                    if let Some(level) = e.trust_level {
                        tool.trust_level = level;
                        tool.classification =
                            Some(e.classification.clone().unwrap_or_else(admin_override));
                    } else if let Some(how) = &e.classification {
                        tool.classification = Some(how.clone());
                    }
                    if let Some(enabled) = e.enabled {
                        tool.enabled = enabled;
                    }
                }
                Server::Live(server)
            }
            (Server::Live(mut server), EventBody::ToolRemoved(e)) => {
                server.tools.remove(&e.name);
                Server::Live(server)
            }
            (Server::Live(_), EventBody::ServerDeleted(_)) => Server::Deleted,
            (state, _) => state,
        }
    }

    fn decide(&self, command: &ServerCommand) -> Result<Decision<EventBody>, ServerRejected> {
        let server = match (self, command) {
            (Server::Absent, ServerCommand::Import { .. }) => return import(command),
            (Server::Live(_) | Server::Deleted, ServerCommand::Import { .. }) => {
                return Err(ServerRejected::AlreadyExists);
            }
            (Server::Absent | Server::Deleted, _) => return Err(ServerRejected::NotFound),
            (Server::Live(server), _) => server,
        };
        let append = |body| Ok(Decision::Append(body));
        match command {
            ServerCommand::Import { .. } => Err(ServerRejected::AlreadyExists),
            ServerCommand::ChangeDetails {
                name,
                description,
                timeout,
            } => {
                let name = name
                    .as_deref()
                    .map(validate_name)
                    .transpose()
                    .map_err(ServerRejected::InvalidName)?
                    .filter(|n| n != &server.name);
                let description = description
                    .as_deref()
                    .map(|d| validate_description(d, MAX_DESCRIPTION_CHARS))
                    .transpose()
                    .map_err(ServerRejected::InvalidDescription)?
                    .filter(|d| d != &server.description);
                let timeout = match *timeout {
                    Some(TimeoutChange::Set(seconds)) => {
                        validate_upstream_timeout(seconds)
                            .map_err(ServerRejected::InvalidTimeout)?;
                        (server.timeout_seconds != Some(seconds))
                            .then_some(server_details_changed::Timeout::TimeoutSeconds(seconds))
                    }
                    Some(TimeoutChange::Clear) => server.timeout_seconds.is_some().then_some(
                        server_details_changed::Timeout::ClearTimeout(ClearTimeout {}),
                    ),
                    None => None,
                };
                if name.is_none() && description.is_none() && timeout.is_none() {
                    return Ok(Decision::Unchanged);
                }
                append(EventBody::ServerDetailsChanged(ServerDetailsChanged {
                    name,
                    description,
                    timeout,
                }))
            }
            ServerCommand::AddTool { tool } => {
                let tool = check_tool(tool)
                    .map_err(|problem| ServerRejected::InvalidTool { index: 0, problem })?;
                if server.tools.contains_key(&tool.name) {
                    return Err(ServerRejected::ToolExists(tool.name));
                }
                if server.tools.len() >= MAX_TOOLS {
                    return Err(ServerRejected::TooManyTools);
                }
                append(EventBody::ToolAdded(ToolAdded { tool: Some(tool) }))
            }
            ServerCommand::ChangeTool {
                name,
                trust_level,
                enabled,
            } => {
                let tool = server
                    .tools
                    .get(name)
                    .ok_or_else(|| ServerRejected::UnknownTool(name.clone()))?;
                // Setting a level, even the current one, pins it as the admin's decision.
                let level = trust_level.filter(|level| {
                    i32::from(*level) != tool.trust_level || !is_admin_override(tool)
                });
                let enabled = enabled.filter(|enabled| *enabled != tool.enabled);
                if level.is_none() && enabled.is_none() {
                    return Ok(Decision::Unchanged);
                }
                append(EventBody::ToolChanged(ToolChanged {
                    name: name.clone(),
                    trust_level: level.map(i32::from),
                    enabled,
                    classification: level.map(|_| admin_override()),
                }))
            }
            ServerCommand::RemoveTool { name } => {
                if !server.tools.contains_key(name) {
                    return Err(ServerRejected::UnknownTool(name.clone()));
                }
                append(EventBody::ToolRemoved(ToolRemoved { name: name.clone() }))
            }
            ServerCommand::RefreshTool { discovered } => {
                let discovered = check_tool(discovered)
                    .map_err(|problem| ServerRejected::InvalidTool { index: 0, problem })?;
                let tool = match server.tools.get(&discovered.name) {
                    None if server.tools.len() >= MAX_TOOLS => {
                        return Err(ServerRejected::TooManyTools);
                    }
                    None => discovered,
                    Some(existing) => {
                        let merged = merge_discovered(existing, &discovered);
                        if &merged == existing {
                            return Ok(Decision::Unchanged);
                        }
                        merged
                    }
                };
                append(EventBody::ToolAdded(ToolAdded { tool: Some(tool) }))
            }
            ServerCommand::DropTool { name } => {
                if !server.tools.contains_key(name) {
                    return Ok(Decision::Unchanged);
                }
                append(EventBody::ToolRemoved(ToolRemoved { name: name.clone() }))
            }
            ServerCommand::Delete => append(EventBody::ServerDeleted(ServerDeleted {})),
        }
    }
}

fn import(command: &ServerCommand) -> Result<Decision<EventBody>, ServerRejected> {
    let ServerCommand::Import {
        server_id,
        key,
        url,
        name,
        description,
        upstream_auth,
        timeout_seconds,
        tools,
    } = command
    else {
        return Err(ServerRejected::NotFound);
    };
    validate_server_key(key).map_err(ServerRejected::InvalidKey)?;
    let url = validate_server_url(url).map_err(ServerRejected::InvalidUrl)?;
    let name = validate_name(name).map_err(ServerRejected::InvalidName)?;
    let description = validate_description(description, MAX_DESCRIPTION_CHARS)
        .map_err(ServerRejected::InvalidDescription)?;
    if let Some(seconds) = *timeout_seconds {
        validate_upstream_timeout(seconds).map_err(ServerRejected::InvalidTimeout)?;
    }
    let tools = check_tools(tools)?;
    Ok(Decision::Append(EventBody::ServerImported(
        ServerImported {
            server_id: server_id.clone(),
            key: key.clone(),
            url,
            name,
            description,
            upstream_auth: Some(upstream_auth.clone().unwrap_or(pb::UpstreamAuth {
                mode: Some(pb::upstream_auth::Mode::None(pb::NoUpstreamAuth {})),
            })),
            tools,
            timeout_seconds: *timeout_seconds,
        },
    )))
}

#[cfg(test)]
mod tests;
