//! Builders of realistic domain events for this crate's unit tests.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is the failure report

use portcullis_proto::TrustLevel;
use portcullis_proto::events::v1::{self as pb, Event, event::Body};
use portcullis_store::Subject;

pub const HOST: &str = "acme-pink-panda-6942";
pub const HUMAN: &str = "01JD8X3T7Q9B2M4N6P8R0S2T4V";
pub const SERVER: &str = "01JD8X4A1B2C3D4E5F6G7H8J9K";
pub const AGENT: &str = "01JD8X5M0N1P2Q3R4S5T6V7W8X";
pub const SESSION: &str = "01JD8X6Y9Z0A1B2C3D4E5F6G7H";

pub fn event(body: Body) -> Event {
    Event {
        meta: Some(pb::EventMeta {
            occurred_at_ms: 1_760_000_000_000,
            actor: Some(pb::Actor {
                kind: Some(pb::actor::Kind::AdminTokenId(
                    "01JD8X0000TOKEN00000000000".into(),
                )),
            }),
            correlation_id: "req-1".into(),
        }),
        body: Some(body),
    }
}

pub fn subject(kind: &str, id: &str) -> Subject {
    Subject::new(HOST, kind, id).unwrap()
}

pub fn tool(name: &str, level: TrustLevel, keyword: &str) -> pb::Tool {
    pb::Tool {
        name: name.into(),
        description: format!("{name} does things"),
        input_schema_sha256: vec![0xab; 32],
        trust_level: level.into(),
        enabled: true,
        classification: Some(pb::Classification {
            kind: Some(pb::classification::Kind::Auto(pb::AutoClassification {
                matched_keyword: keyword.into(),
                reason: format!("name contains {keyword:?}"),
            })),
        }),
    }
}

pub fn server_imported() -> Event {
    event(Body::ServerImported(pb::ServerImported {
        server_id: SERVER.into(),
        key: "github".into(),
        url: "https://mcp.example.com/mcp".into(),
        name: "GitHub".into(),
        description: "Issues and pull requests".into(),
        upstream_auth: Some(pb::UpstreamAuth {
            mode: Some(pb::upstream_auth::Mode::Oauth(pb::UpstreamOAuth {
                client_id: "portcullis".into(),
                sealed_client_secret: vec![1, 2, 3],
                key_id: "k1".into(),
            })),
        }),
        tools: vec![
            tool("list_issues", TrustLevel::Low, ""),
            tool("delete_repo", TrustLevel::High, "delete"),
        ],
        timeout_seconds: None,
    }))
}

pub fn grant_issued(level: TrustLevel) -> Event {
    event(Body::GrantIssued(pb::GrantIssued {
        human_id: HUMAN.into(),
        server_id: SERVER.into(),
        max_trust_level: level.into(),
    }))
}

pub fn grant_changed(level: TrustLevel) -> Event {
    event(Body::GrantChanged(pb::GrantChanged {
        max_trust_level: level.into(),
    }))
}

pub fn grant_revoked() -> Event {
    event(Body::GrantRevoked(pb::GrantRevoked {}))
}

pub fn human_added() -> Event {
    event(Body::HumanAdded(pb::HumanAdded {
        human_id: HUMAN.into(),
        email: "ada@example.com".into(),
        pre_authorized: true,
    }))
}

pub fn human_removed() -> Event {
    event(Body::HumanRemoved(pb::HumanRemoved {}))
}

pub fn agent_registered() -> Event {
    event(Body::AgentRegistered(pb::AgentRegistered {
        agent_id: AGENT.into(),
        client_id: "https://claude.ai/oauth/client.json".into(),
        name: "Claude Desktop".into(),
        uri: "https://claude.ai".into(),
        agent_type: "claude-desktop".into(),
        redirect_uris: vec!["http://127.0.0.1:33418/callback".into()],
        human_id: Some(HUMAN.into()),
    }))
}

pub fn session_started(level: TrustLevel) -> Event {
    event(Body::SessionStarted(pb::SessionStarted {
        session_id: SESSION.into(),
        human_id: HUMAN.into(),
        agent_id: AGENT.into(),
        client_id: "https://claude.ai/oauth/client.json".into(),
        server_id: SERVER.into(),
        trust_level: level.into(),
        started_at_ms: 1_760_000_000_000,
        idle_timeout_seconds: 30 * 24 * 3600,
        absolute_timeout_seconds: 90 * 24 * 3600,
    }))
}

pub fn session_refreshed(at_ms: i64) -> Event {
    event(Body::SessionRefreshed(pb::SessionRefreshed {
        at_ms,
        ..Default::default()
    }))
}

pub fn session_revoked(reason: &str) -> Event {
    event(Body::SessionRevoked(pb::SessionRevoked {
        reason: reason.into(),
    }))
}
