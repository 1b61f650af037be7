//! `AuditService`: one host's decisions, newest first, filtered and paged.
//!
//! The host is checked first (another organization's host is NOT_FOUND), then the request is
//! turned into an `AuditFilter` and checked (each field on its own, so INVALID_ARGUMENT names
//! it), then `ApiState::audit` is asked; without an audit log every valid query answers an
//! empty last page, as REST does.

use portcullis_commands::control::{ControlError, Principal};
use portcullis_proto::audit::v1 as audit;
use portcullis_proto::control::v1 as api;
use portcullis_proto::control::v1::audit_service_server::AuditService;
use portcullis_store::{AuditCursor, AuditDecision, AuditError, AuditFilter, MAX_AUDIT_PAGE};
use prost::Message;
use tonic::{Request, Response, Status};

use super::{Api, control_status, invalid, non_empty, status};
use crate::ApiError;

/// Page size when the request leaves it 0.
const DEFAULT_PAGE: usize = 100;

/// What a query asks the audit log.
#[derive(Debug, PartialEq)]
struct Query {
    filter: AuditFilter,
    limit: usize,
    cursor: Option<AuditCursor>,
}

/// Checks a request and turns it into a query (time bounds: the request's upper bound is
/// exclusive, the filter's inclusive).
fn query(request: api::QueryAuditRequest) -> Result<Query, Status> {
    let decision = match audit::Decision::try_from(request.decision) {
        Ok(audit::Decision::Unspecified) => None,
        Ok(audit::Decision::Allowed) => Some(AuditDecision::Allowed),
        Ok(audit::Decision::Denied) => Some(AuditDecision::Denied),
        Err(_) => {
            return Err(invalid(
                "decision",
                format!(
                    "decision {} is not ALLOWED (1) or DENIED (2)",
                    request.decision
                ),
            ));
        }
    };
    if request.since_ms < 0 {
        return Err(invalid("since_ms", "must not be negative"));
    }
    if request.until_ms < 0 {
        return Err(invalid("until_ms", "must not be negative"));
    }
    let filter = AuditFilter {
        host_id: request.host_id,
        human_id: non_empty(request.human_id),
        agent_id: non_empty(request.agent_id),
        server_id: non_empty(request.server_id),
        tool: non_empty(request.tool),
        decision,
        since_ms: (request.since_ms > 0).then_some(request.since_ms),
        until_ms: (request.until_ms > 0).then(|| request.until_ms - 1),
    };
    check_filter(&filter)?;
    let limit = match usize::try_from(request.limit) {
        Ok(0) => DEFAULT_PAGE,
        Ok(limit) => limit.min(MAX_AUDIT_PAGE),
        Err(_) => MAX_AUDIT_PAGE,
    };
    let cursor = match non_empty(request.cursor) {
        None => None,
        Some(text) => {
            Some(AuditCursor::parse(&text).map_err(|e| invalid("cursor", e.to_string()))?)
        }
    };
    Ok(Query {
        filter,
        limit,
        cursor,
    })
}

/// Checks each filter field on its own, so INVALID_ARGUMENT names the request field.
fn check_filter(filter: &AuditFilter) -> Result<(), Status> {
    let host = || AuditFilter::host(filter.host_id.clone());
    let checks = [
        ("host_id", host()),
        (
            "human_id",
            AuditFilter {
                human_id: filter.human_id.clone(),
                ..host()
            },
        ),
        (
            "agent_id",
            AuditFilter {
                agent_id: filter.agent_id.clone(),
                ..host()
            },
        ),
        (
            "server_id",
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
            AuditError::InvalidQuery { reason } => invalid(field, reason),
            other => audit_status(other),
        })?;
    }
    filter.validate().map_err(audit_status)
}

fn audit_status(error: AuditError) -> Status {
    match error {
        AuditError::InvalidQuery { reason } => status(ApiError::BadRequest {
            field: None,
            message: reason,
        }),
        other => control_status(ControlError::unavailable(other)),
    }
}

impl Api {
    async fn query_audit_page(
        &self,
        principal: &Principal,
        request: api::QueryAuditRequest,
    ) -> Result<api::QueryAuditResponse, Status> {
        self.state
            .control
            .get_host(principal, &request.host_id)
            .await
            .map_err(control_status)?;
        let query = query(request)?;
        let Some(log) = &self.state.audit else {
            return Ok(api::QueryAuditResponse::default());
        };
        let page = log
            .query(query.filter, query.limit, query.cursor)
            .await
            .map_err(audit_status)?;
        let records = page
            .records
            .iter()
            .map(|recorded| {
                audit::AuditRecord::decode(recorded.entry.record.clone()).map_err(|e| {
                    audit_status(AuditError::Corrupt {
                        sequence: recorded.sequence,
                        reason: e.to_string(),
                    })
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        Ok(api::QueryAuditResponse {
            records,
            next_cursor: page.next.map(|c| c.to_string()).unwrap_or_default(),
        })
    }
}

#[tonic::async_trait]
impl AuditService for Api {
    async fn query_audit(
        &self,
        request: Request<api::QueryAuditRequest>,
    ) -> Result<Response<api::QueryAuditResponse>, Status> {
        let principal = self.principal(&request).await?;
        let response = self
            .query_audit_page(&principal, request.into_inner())
            .await?;
        Ok(Response::new(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(host_id: &str) -> api::QueryAuditRequest {
        api::QueryAuditRequest {
            host_id: host_id.to_owned(),
            ..api::QueryAuditRequest::default()
        }
    }

    #[test]
    fn empty_fields_are_unset_and_the_upper_bound_becomes_inclusive() {
        let got = query(api::QueryAuditRequest {
            tool: "search".to_owned(),
            decision: audit::Decision::Denied as i32,
            until_ms: 2000,
            limit: 5000,
            ..request("h-1")
        })
        .expect("valid");
        assert_eq!(got.filter.tool.as_deref(), Some("search"));
        assert_eq!(got.filter.human_id, None);
        assert_eq!(got.filter.decision, Some(AuditDecision::Denied));
        assert_eq!(got.filter.since_ms, None);
        assert_eq!(got.filter.until_ms, Some(1999));
        assert_eq!(got.limit, MAX_AUDIT_PAGE);
        assert_eq!(query(request("h-1")).expect("valid").limit, DEFAULT_PAGE);
    }

    #[test]
    fn bad_fields_are_invalid_and_named() {
        for (bad, field) in [
            (
                api::QueryAuditRequest {
                    decision: 7,
                    ..request("h")
                },
                "decision",
            ),
            (
                api::QueryAuditRequest {
                    since_ms: -1,
                    ..request("h")
                },
                "since_ms",
            ),
            (
                api::QueryAuditRequest {
                    cursor: "nope".to_owned(),
                    ..request("h")
                },
                "cursor",
            ),
            (
                api::QueryAuditRequest {
                    agent_id: "a.b".to_owned(),
                    ..request("h")
                },
                "agent_id",
            ),
        ] {
            let status = query(bad).expect_err("refused");
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            assert!(status.message().contains(field), "{field}: {status:?}");
        }
    }
}
