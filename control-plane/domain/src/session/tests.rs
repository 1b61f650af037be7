//! Given events, when a command, then events or a refusal.

use super::*;

fn started() -> SessionStarted {
    SessionStarted {
        session_id: "X1".into(),
        human_id: "H1".into(),
        agent_id: "A1".into(),
        client_id: "c".into(),
        server_id: "S1".into(),
        trust_level: 1,
        started_at_ms: 1,
        idle_timeout_seconds: 60,
        absolute_timeout_seconds: 120,
    }
}

fn revoke(reason: &str) -> SessionCommand {
    SessionCommand::Revoke {
        reason: reason.into(),
    }
}

fn revoked(reason: &str) -> EventBody {
    EventBody::SessionRevoked(SessionRevoked {
        reason: reason.into(),
    })
}

#[track_caller]
fn check(
    history: &[EventBody],
    command: SessionCommand,
    expected: Result<Decision<EventBody>, SessionRejected>,
) {
    let state = history.iter().fold(Session::default(), Session::evolve);
    assert_eq!(state.decide(&command), expected);
}

#[test]
fn a_session_is_started_once() {
    let start = SessionCommand::Start(started());
    let event = EventBody::SessionStarted(started());
    check(&[], start.clone(), Ok(Decision::Append(event.clone())));
    check(&[event], start, Err(SessionRejected::AlreadyExists));
}

#[test]
fn an_open_session_is_revoked_once_and_stays_revoked() {
    let event = EventBody::SessionStarted(started());
    check(
        std::slice::from_ref(&event),
        revoke("human removed"),
        Ok(Decision::Append(revoked("human removed"))),
    );
    check(
        &[event, revoked("x")],
        revoke("again"),
        Ok(Decision::Unchanged),
    );
}

#[test]
fn a_long_reason_is_cut_short() {
    let event = EventBody::SessionStarted(started());
    let long = "r".repeat(MAX_REASON_CHARS + 10);
    check(
        &[event],
        revoke(&long),
        Ok(Decision::Append(revoked(&"r".repeat(MAX_REASON_CHARS)))),
    );
}

#[test]
fn an_unknown_session_cannot_be_revoked() {
    check(&[], revoke("x"), Err(SessionRejected::NotFound));
}
