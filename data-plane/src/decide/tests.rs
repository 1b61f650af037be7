//! The rule against every combination of consented level, grant ceiling and agent cap.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use std::collections::BTreeMap;

use portcullis_projector::models::{Classification, Session, Tool};

use super::*;

const LEVELS: [TrustLevel; 3] = TrustLevel::ALL;

fn session(level: TrustLevel) -> SessionRecord {
    SessionRecord::from_session(&Session {
        human_id: "h".into(),
        agent_id: "a".into(),
        client_id: "c".into(),
        server_id: "s".into(),
        trust_level: level,
        started_at_ms: 1,
        last_used_ms: 1,
        idle_timeout_seconds: 60,
        absolute_timeout_seconds: 60,
        started_sequence: 100,
        revoked: None,
    })
    .unwrap()
}

fn grant(level: TrustLevel) -> Grant {
    Grant {
        human_id: "h".into(),
        server_id: "s".into(),
        max_trust_level: level,
        issued_sequence: 50,
    }
}

fn agent(cap: Option<TrustLevel>) -> Agent {
    Agent {
        client_id: "c".into(),
        name: "n".into(),
        uri: String::new(),
        agent_type: "sdk".into(),
        redirect_uris: vec![],
        human_id: Some("h".into()),
        caps: cap.map(|c| ("s".to_owned(), c)).into_iter().collect(),
        revoked_servers: BTreeMap::new(),
    }
}

fn tool(level: TrustLevel, enabled: bool) -> Tool {
    Tool {
        description: String::new(),
        input_schema_sha256: String::new(),
        trust_level: level,
        enabled,
        classification: Classification::AdminOverride,
    }
}

fn server() -> Server {
    Server {
        key: "k".into(),
        url: "http://127.0.0.1:1/mcp".into(),
        name: "n".into(),
        description: String::new(),
        upstream_auth: portcullis_projector::models::UpstreamAuth::None,
        timeout_seconds: None,
        tools: [
            ("read_low".to_owned(), tool(TrustLevel::Low, true)),
            ("write_medium".to_owned(), tool(TrustLevel::Medium, true)),
            ("delete_high".to_owned(), tool(TrustLevel::High, true)),
            ("disabled_low".to_owned(), tool(TrustLevel::Low, false)),
        ]
        .into_iter()
        .collect(),
    }
}

fn tool_for(level: TrustLevel) -> &'static str {
    match level {
        TrustLevel::Low => "read_low",
        TrustLevel::Medium => "write_medium",
        TrustLevel::High => "delete_high",
    }
}

#[test]
fn every_combination_of_consent_grant_and_cap_follows_the_rule() {
    let server = server();
    let mut checked = 0;
    for consented in LEVELS {
        for ceiling in LEVELS {
            for cap in [
                None,
                Some(TrustLevel::Low),
                Some(TrustLevel::Medium),
                Some(TrustLevel::High),
            ] {
                let session = session(consented);
                let grant = grant(ceiling);
                let agent = agent(cap);
                let facts = Facts {
                    session: &session,
                    grant: Some(&grant),
                    server: &server,
                    agent: Some(&agent),
                };
                let effective = [Some(consented), Some(ceiling), cap]
                    .into_iter()
                    .flatten()
                    .min()
                    .unwrap();
                for required in LEVELS {
                    let decision = decide(&facts, tool_for(required));
                    let expected_allow = required <= effective;
                    assert_eq!(
                        matches!(decision, Decision::Allow(_)),
                        expected_allow,
                        "consented {consented:?} ceiling {ceiling:?} cap {cap:?} tool {required:?}"
                    );
                    if !expected_allow {
                        assert_eq!(
                            decision,
                            Decision::Deny(
                                DenyReason::InsufficientTrust,
                                Levels {
                                    required: Some(required),
                                    consented,
                                    grant: Some(ceiling),
                                    agent_cap: cap,
                                    effective,
                                }
                            )
                        );
                    }
                    assert_eq!(visible(&facts, tool_for(required)), expected_allow);
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 3 * 3 * 4 * 3);
}

#[test]
fn unknown_and_disabled_tools_are_denied_at_any_level() {
    let server = server();
    let session = session(TrustLevel::High);
    let grant = grant(TrustLevel::High);
    let agent = agent(None);
    let facts = Facts {
        session: &session,
        grant: Some(&grant),
        server: &server,
        agent: Some(&agent),
    };
    assert!(matches!(
        decide(&facts, "nope"),
        Decision::Deny(DenyReason::UnknownTool, Levels { required: None, .. })
    ));
    assert!(matches!(
        decide(&facts, "disabled_low"),
        Decision::Deny(DenyReason::ToolDisabled, _)
    ));
}

#[test]
fn no_grant_a_newer_grant_or_a_revoked_agent_deny_everything() {
    let server = server();
    let session = session(TrustLevel::High);
    let live_agent = agent(None);
    let no_grant = Facts {
        session: &session,
        grant: None,
        server: &server,
        agent: Some(&live_agent),
    };
    assert!(matches!(
        decide(&no_grant, "read_low"),
        Decision::Deny(DenyReason::NoGrant, _)
    ));

    let mut newer = grant(TrustLevel::High);
    newer.issued_sequence = 101;
    let regranted = Facts {
        grant: Some(&newer),
        ..no_grant
    };
    assert!(matches!(
        decide(&regranted, "read_low"),
        Decision::Deny(DenyReason::GrantNewerThanSession, _)
    ));

    let granted = grant(TrustLevel::High);
    let mut revoked = agent(None);
    revoked.revoked_servers.insert("s".into(), 100);
    let agent_revoked = Facts {
        grant: Some(&granted),
        agent: Some(&revoked),
        ..no_grant
    };
    assert!(matches!(
        decide(&agent_revoked, "read_low"),
        Decision::Deny(DenyReason::AgentRevoked, _)
    ));
    let deleted = Facts {
        agent: None,
        ..agent_revoked
    };
    assert!(matches!(
        decide(&deleted, "read_low"),
        Decision::Deny(DenyReason::AgentRevoked, _)
    ));

    // A revocation before the session started does not touch it.
    let mut earlier = agent(None);
    earlier.revoked_servers.insert("s".into(), 99);
    let survives = Facts {
        agent: Some(&earlier),
        ..agent_revoked
    };
    assert!(matches!(decide(&survives, "read_low"), Decision::Allow(_)));
}
