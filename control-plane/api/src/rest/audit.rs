//! `GET /api/v1/hosts/{host}/audit`: the host's authorization decisions, newest first,
//! filtered by human (email or id), agent, server (key or id), tool, decision and time, in
//! pages linked by an opaque cursor.
//!
//! Without an audit log (`ApiState::audit` is `None`) every query answers an empty page.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use portcullis_commands::control::ControlError;
use portcullis_proto::audit::v1 as audit_pb;
use portcullis_store::{
    AuditCursor, AuditDecision, AuditError, AuditFilter, MAX_AUDIT_PAGE, RecordedAudit,
};
use prost::Message as _;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{Admin, ApiPath, ApiQuery};
use super::types::TrustLevel;
use crate::{ApiError, ApiState};

/// Records per page when `limit` is not given.
const DEFAULT_LIMIT: usize = 50;

/// The filters of an audit query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only decisions for this human: their email, or their id.
    pub human: Option<String>,
    /// Only decisions for this agent (its id).
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub agent: Option<String>,
    /// Only decisions on this server: its key, or its id (a deleted server's).
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub server: Option<String>,
    /// Only calls of this tool.
    pub tool: Option<String>,
    /// Only `allowed`, or only `denied`, decisions.
    #[param(inline, value_type = Option<Decision>)]
    pub decision: Option<String>,
    /// Only decisions at or after this time: RFC 3339 (`2026-01-31T12:00:00Z`) or
    /// milliseconds since the Unix epoch.
    pub since: Option<String>,
    /// Only decisions at or before this time: RFC 3339 or milliseconds since the Unix epoch.
    pub until: Option<String>,
    /// Records per page: 1 to 500. Default: 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// Where the page starts: the `next_cursor` of the previous page (same filters).
    pub cursor: Option<String>,
}

impl AuditQuery {
    fn without_empty(self) -> Self {
        let keep = |value: Option<String>| value.filter(|v| !v.is_empty());
        AuditQuery {
            human: keep(self.human),
            agent: keep(self.agent),
            server: keep(self.server),
            tool: keep(self.tool),
            decision: keep(self.decision),
            since: keep(self.since),
            until: keep(self.until),
            limit: keep(self.limit),
            cursor: keep(self.cursor),
        }
    }
}

/// The outcome of a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The call was allowed and forwarded.
    Allowed,
    /// The call was refused.
    Denied,
}

/// One page of audit records.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Matching records, newest first.
    pub records: Vec<AuditRecord>,
    /// Pass as `cursor` (with the same filters) for the next, older page; absent on the last.
    pub next_cursor: Option<String>,
}

/// One authorization decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditRecord {
    /// The record's id (a ULID).
    pub id: String,
    /// When the decision was made (RFC 3339, UTC).
    pub time: String,
    /// When the decision was made (milliseconds since the Unix epoch).
    pub time_ms: i64,
    /// Allowed or denied.
    pub decision: Decision,
    /// Why (for a denial, which check failed).
    pub reason: String,
    /// The human's id, if known.
    pub human_id: Option<String>,
    /// The human's email, if known.
    pub human_email: Option<String>,
    /// The agent's id, if known.
    pub agent_id: Option<String>,
    /// The agent's display name, if known.
    pub agent_name: Option<String>,
    /// The agent's OAuth client id, if known.
    pub client_id: Option<String>,
    /// The server's id, if known.
    pub server_id: Option<String>,
    /// The server's key, if known.
    pub server_key: Option<String>,
    /// The tool called, if known.
    pub tool: Option<String>,
    /// The level the tool needs, if the tool is known.
    pub required_trust_level: Option<TrustLevel>,
    /// The session's effective level, if there was a live session.
    pub granted_trust_level: Option<TrustLevel>,
    /// Time spent deciding, microseconds.
    pub latency_us: u64,
    /// The gateway's request id, shared with the logs.
    pub request_id: Option<String>,
    /// Lower-case hex SHA-256 of the canonical JSON arguments (never the arguments).
    pub arguments_sha256: Option<String>,
}

/// The host's authorization decisions, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/hosts/{host}/audit",
    tag = "audit",
    operation_id = "query_audit",
    params(("host" = String, Path, description = "The host's id"), AuditQuery),
    responses((status = 200, description = "One page of records", body = AuditPage))
)]
pub async fn query(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath(host): ApiPath<String>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let host = state.control.get_host(&admin.principal, &host).await?;
    // An empty parameter (`?since=`, as forms send them) is an absent one.
    let query = query.without_empty();
    let limit = match query.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_AUDIT_PAGE).contains(n))
            .ok_or_else(|| ApiError::invalid("limit", format!("must be 1 to {MAX_AUDIT_PAGE}")))?,
    };
    let cursor = match query.cursor.as_deref() {
        None => None,
        Some(text) => Some(
            AuditCursor::parse(text)
                .map_err(|_| ApiError::invalid("cursor", "not a cursor this API handed out"))?,
        ),
    };
    let decision = match query.decision.as_deref() {
        None => None,
        Some(text) => Some(
            AuditDecision::parse(text)
                .ok_or_else(|| ApiError::invalid("decision", "must be allowed or denied"))?,
        ),
    };
    let since_ms = query
        .since
        .as_deref()
        .map(|t| parse_time("since", t))
        .transpose()?;
    let until_ms = query
        .until
        .as_deref()
        .map(|t| parse_time("until", t))
        .transpose()?;
    if let (Some(since), Some(until)) = (since_ms, until_ms)
        && since > until
    {
        return Err(ApiError::invalid("since", "is after until"));
    }

    let mut filter = AuditFilter {
        decision,
        since_ms,
        until_ms,
        ..AuditFilter::host(host.host_id.clone())
    };
    let empty = || {
        Json(AuditPage {
            records: Vec::new(),
            next_cursor: None,
        })
    };
    if let Some(human) = query.human {
        if human.contains('@') {
            match state
                .control
                .find_human_by_email(&admin.principal, &host.host_id, &human)
                .await
            {
                Ok(found) => filter.human_id = Some(found.human_id),
                Err(ControlError::NotFound { .. }) => return Ok(empty()),
                Err(ControlError::Invalid { reason, .. }) => {
                    return Err(ApiError::invalid("human", reason));
                }
                Err(other) => return Err(other.into()),
            }
        } else {
            filter.human_id = Some(human);
        }
    }
    filter.agent_id = query.agent;
    if let Some(server) = query.server {
        filter.server_id = Some(
            match state
                .control
                .find_server_by_key(&admin.principal, &host.host_id, &server)
                .await
            {
                Ok(found) => found.server_id,
                Err(ControlError::NotFound { .. }) => server,
                Err(other) => return Err(other.into()),
            },
        );
    }
    filter.tool = query.tool;
    check_filter(&filter)?;

    let Some(audit) = &state.audit else {
        return Ok(empty());
    };
    let page = audit
        .query(filter, limit, cursor)
        .await
        .map_err(|error| match error {
            AuditError::InvalidQuery { reason } => ApiError::BadRequest {
                field: None,
                message: format!("invalid audit query: {reason}"),
            },
            other => ControlError::unavailable(other).into(),
        })?;
    Ok(Json(AuditPage {
        records: page.records.into_iter().map(record).collect(),
        next_cursor: page.next.map(|cursor| cursor.to_string()),
    }))
}

/// Checks each filter field on its own, so a 400 names the query parameter.
fn check_filter(filter: &AuditFilter) -> Result<(), ApiError> {
    let host = || AuditFilter::host(filter.host_id.clone());
    let checks = [
        (
            "human",
            AuditFilter {
                human_id: filter.human_id.clone(),
                ..host()
            },
        ),
        (
            "agent",
            AuditFilter {
                agent_id: filter.agent_id.clone(),
                ..host()
            },
        ),
        (
            "server",
            AuditFilter {
                server_id: filter.server_id.clone(),
                ..host()
            },
        ),
        (
            "tool",
            AuditFilter {
                tool: filter.tool.clone(),
                ..host()
            },
        ),
    ];
    for (field, single) in checks {
        single.validate().map_err(|error| match error {
            AuditError::InvalidQuery { reason } => ApiError::invalid(field, reason),
            other => ApiError::invalid(field, other.to_string()),
        })?;
    }
    Ok(())
}

/// Milliseconds since the Unix epoch from RFC 3339 or a plain number of milliseconds.
fn parse_time(field: &str, text: &str) -> Result<i64, ApiError> {
    let invalid = || {
        ApiError::invalid(
            field,
            "must be an RFC 3339 time (2026-01-31T12:00:00Z) or milliseconds since the Unix epoch",
        )
    };
    let ms = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<i64>().map_err(|_| invalid())?
    } else {
        let time = humantime::parse_rfc3339_weak(text).map_err(|_| invalid())?;
        let since_epoch = time.duration_since(UNIX_EPOCH).map_err(|_| invalid())?;
        i64::try_from(since_epoch.as_millis()).map_err(|_| invalid())?
    };
    if !(0..=portcullis_store::MAX_AUDIT_TIME_MS).contains(&ms) {
        return Err(invalid());
    }
    Ok(ms)
}

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

fn level(value: i32) -> Option<TrustLevel> {
    portcullis_proto::TrustLevel::try_from(value)
        .ok()
        .map(Into::into)
}

fn rfc3339(ms: i64) -> String {
    let time = u64::try_from(ms)
        .ok()
        .and_then(|ms| UNIX_EPOCH.checked_add(Duration::from_millis(ms)))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    humantime::format_rfc3339_millis(time).to_string()
}

/// The wire form of a stored record: its encoded `AuditRecord`, or (should that not decode)
/// the fields stored beside it.
pub(crate) fn record(recorded: RecordedAudit) -> AuditRecord {
    let entry = recorded.entry;
    let decision = match entry.decision {
        AuditDecision::Allowed => Decision::Allowed,
        AuditDecision::Denied => Decision::Denied,
    };
    let decoded = audit_pb::AuditRecord::decode(entry.record.as_ref()).unwrap_or_default();
    let pick = |decoded: String, stored: String| non_empty(decoded).or_else(|| non_empty(stored));
    AuditRecord {
        id: entry.record_id,
        time: rfc3339(entry.time_ms),
        time_ms: entry.time_ms,
        decision,
        reason: decoded.reason,
        human_id: pick(decoded.human_id, entry.human_id),
        human_email: non_empty(decoded.human_email),
        agent_id: pick(decoded.agent_id, entry.agent_id),
        agent_name: non_empty(decoded.agent_name),
        client_id: non_empty(decoded.client_id),
        server_id: pick(decoded.server_id, entry.server_id),
        server_key: non_empty(decoded.server_key),
        tool: pick(decoded.tool, entry.tool),
        required_trust_level: level(decoded.required_trust),
        granted_trust_level: level(decoded.granted_trust),
        latency_us: decoded.latency_us,
        request_id: non_empty(decoded.request_id),
        arguments_sha256: (!decoded.arguments_sha256.is_empty()).then(|| {
            decoded
                .arguments_sha256
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        }),
    }
}
