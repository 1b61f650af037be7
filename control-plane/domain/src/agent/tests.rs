//! Given events, when a command, then events or a refusal.

use portcullis_proto::TrustLevel::{Low, Medium};

use super::*;

fn registration() -> AgentRegistered {
    AgentRegistered {
        agent_id: "A1".into(),
        client_id: "https://claude.ai/oauth/client.json".into(),
        name: "Claude Desktop".into(),
        uri: "https://claude.ai".into(),
        agent_type: "claude-desktop".into(),
        redirect_uris: vec!["http://127.0.0.1:33418/callback".into()],
        human_id: Some("H1".into()),
    }
}

fn registered() -> EventBody {
    EventBody::AgentRegistered(registration())
}

fn set_cap(level: TrustLevel) -> AgentCommand {
    AgentCommand::SetCap {
        server_id: "S1".into(),
        max_trust_level: level,
    }
}

fn cap_set(level: TrustLevel) -> EventBody {
    EventBody::AgentCapSet(AgentCapSet {
        server_id: "S1".into(),
        max_trust_level: level.into(),
    })
}

fn clear_cap() -> AgentCommand {
    AgentCommand::ClearCap {
        server_id: "S1".into(),
    }
}

fn deleted() -> EventBody {
    EventBody::AgentDeleted(AgentDeleted {})
}

#[track_caller]
fn check(
    history: &[EventBody],
    command: AgentCommand,
    expected: Result<Decision<EventBody>, AgentRejected>,
) {
    let state = history.iter().fold(Agent::default(), Agent::evolve);
    assert_eq!(state.decide(&command), expected);
}

#[test]
fn an_agent_is_registered_once() {
    check(
        &[],
        AgentCommand::Register(registration()),
        Ok(Decision::Append(registered())),
    );
    check(
        &[registered()],
        AgentCommand::Register(registration()),
        Err(AgentRejected::AlreadyExists),
    );
}

#[test]
fn a_cap_is_set_changed_and_the_same_cap_changes_nothing() {
    check(
        &[registered()],
        set_cap(Medium),
        Ok(Decision::Append(cap_set(Medium))),
    );
    check(
        &[registered(), cap_set(Medium)],
        set_cap(Low),
        Ok(Decision::Append(cap_set(Low))),
    );
    check(
        &[registered(), cap_set(Medium)],
        set_cap(Medium),
        Ok(Decision::Unchanged),
    );
}

#[test]
fn clearing_a_cap_is_recorded_only_when_there_is_one() {
    check(
        &[registered(), cap_set(Low)],
        clear_cap(),
        Ok(Decision::Append(EventBody::AgentCapCleared(
            AgentCapCleared {
                server_id: "S1".into(),
            },
        ))),
    );
    check(&[registered()], clear_cap(), Ok(Decision::Unchanged));
}

#[test]
fn every_revocation_on_a_server_is_recorded() {
    let revoke = AgentCommand::RevokeServer {
        server_id: "S1".into(),
    };
    let revoked = EventBody::AgentServerRevoked(AgentServerRevoked {
        server_id: "S1".into(),
    });
    check(
        &[registered()],
        revoke.clone(),
        Ok(Decision::Append(revoked.clone())),
    );
    check(
        &[registered(), revoked.clone()],
        revoke,
        Ok(Decision::Append(revoked)),
    );
}

#[test]
fn a_deleted_or_unknown_agent_is_not_found() {
    check(
        &[registered()],
        AgentCommand::Delete,
        Ok(Decision::Append(deleted())),
    );
    for command in [set_cap(Low), clear_cap(), AgentCommand::Delete] {
        check(
            &[registered(), deleted()],
            command.clone(),
            Err(AgentRejected::NotFound),
        );
        check(&[], command, Err(AgentRejected::NotFound));
    }
}
