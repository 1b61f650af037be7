//! Tests of event → key routing.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use portcullis_proto::TrustLevel;
use portcullis_proto::events::v1 as pb;

use super::*;
use crate::test_events::*;

fn key(k: &str) -> Key {
    Key::new(k).unwrap()
}

/// Given an event on `subject`, then it touches exactly `expected`.
#[track_caller]
fn check(event: Event, subject: Subject, expected: &[(ModelKind, Target)]) {
    let targets = keys_for(&event, &subject).unwrap();
    let expected: Vec<KeyTarget> = expected
        .iter()
        .map(|(kind, target)| KeyTarget {
            kind: *kind,
            target: target.clone(),
        })
        .collect();
    assert_eq!(targets, expected);
}

#[test]
fn a_grant_event_touches_one_grant_key_named_by_its_subject() {
    let grant_id = portcullis_proto::subjects::grant_id(HUMAN, SERVER);
    check(
        grant_changed(TrustLevel::Low),
        subject("grant", &grant_id),
        &[(
            ModelKind::Grant,
            Target::Key(key(&format!("grant.{HOST}.{HUMAN}.{SERVER}"))),
        )],
    );
}

#[test]
fn creating_a_host_also_targets_its_organization() {
    let created = crate::test_events::event(pb::event::Body::HostCreated(pb::HostCreated {
        host_id: HOST.into(),
        org_id: "O1".into(),
        prefix: "acme".into(),
        is_default: false,
        settings: None,
    }));
    check(
        created,
        Subject::new(HOST, "host", HOST).unwrap(),
        &[
            (ModelKind::Host, Target::Key(key(&format!("host.{HOST}")))),
            (ModelKind::Organization, Target::Key(key("org.O1"))),
        ],
    );
}

#[test]
fn removing_a_human_also_targets_every_grant_of_the_human() {
    check(
        human_removed(),
        subject("human", HUMAN),
        &[
            (
                ModelKind::Human,
                Target::Key(key(&format!("human.{HOST}.{HUMAN}"))),
            ),
            (
                ModelKind::Grant,
                Target::Prefix(key(&format!("grant.{HOST}.{HUMAN}"))),
            ),
        ],
    );
}

#[test]
fn ids_come_from_the_subject_not_the_body() {
    let added = event(Body::ToolAdded(pb::ToolAdded {
        tool: Some(tool("x", TrustLevel::Low, "")),
    }));
    check(
        added,
        subject("server", SERVER),
        &[(
            ModelKind::Server,
            Target::Key(key(&format!("server.{HOST}.{SERVER}"))),
        )],
    );
    let org = event(Body::OrganizationCreated(pb::OrganizationCreated {
        org_id: "O1".into(),
        name: "Acme".into(),
    }));
    check(
        org,
        portcullis_proto::subjects::organization("O1").unwrap(),
        &[(ModelKind::Organization, Target::Key(key("org.O1")))],
    );
}

#[test]
fn a_body_on_the_wrong_aggregate_is_an_error() {
    let err = keys_for(&grant_revoked(), &subject("server", SERVER)).unwrap_err();
    assert!(
        matches!(
            err,
            FoldError::WrongAggregate {
                event_type: "GrantRevoked",
                ..
            }
        ),
        "{err:?}"
    );
    let err = keys_for(&Event::default(), &subject("grant", "H-S")).unwrap_err();
    assert!(matches!(err, FoldError::MissingBody), "{err:?}");
}

#[test]
fn a_grant_subject_that_is_not_human_dash_server_is_an_error() {
    let err = keys_for(&grant_revoked(), &subject("grant", HUMAN)).unwrap_err();
    assert!(matches!(err, FoldError::MalformedGrantId { .. }), "{err:?}");
}

#[test]
fn every_kind_lives_in_a_read_model_bucket() {
    for kind in [
        ModelKind::Organization,
        ModelKind::AdminToken,
        ModelKind::Host,
        ModelKind::Server,
        ModelKind::ServerKey,
        ModelKind::Human,
        ModelKind::HumanEmail,
        ModelKind::Grant,
        ModelKind::Agent,
        ModelKind::AgentClient,
        ModelKind::Session,
    ] {
        assert!(READ_MODEL_BUCKETS.contains(&kind.bucket_base()), "{kind:?}");
    }
}

#[test]
fn registering_an_agent_also_indexes_its_client_id_by_hash() {
    let client = client_id_sha256_hex("https://claude.ai/oauth/client.json");
    assert_eq!(client.len(), 64);
    check(
        agent_registered(),
        subject("agent", AGENT),
        &[
            (
                ModelKind::Agent,
                Target::Key(key(&format!("agent.{HOST}.{AGENT}"))),
            ),
            (
                ModelKind::AgentClient,
                Target::Key(key(&format!("agent_client.{HOST}.{client}"))),
            ),
        ],
    );
    // Later agent events touch only the agent.
    check(
        crate::test_events::event(pb::event::Body::AgentDeleted(pb::AgentDeleted {})),
        subject("agent", AGENT),
        &[(
            ModelKind::Agent,
            Target::Key(key(&format!("agent.{HOST}.{AGENT}"))),
        )],
    );
}
