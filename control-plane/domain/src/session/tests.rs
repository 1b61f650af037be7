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

fn issue(client_id: &str, hash: u8, at_ms: i64) -> SessionCommand {
    SessionCommand::IssueRefreshToken {
        client_id: client_id.into(),
        refresh_token_sha256: vec![hash; 32],
        resource: "https://h.example/mcp".into(),
        at_ms,
    }
}

fn rotate(presented: u8, new: u8, at_ms: i64) -> SessionCommand {
    SessionCommand::RotateRefreshToken {
        client_id: Some("c".into()),
        presented_sha256: vec![presented; 32],
        refresh_token_sha256: vec![new; 32],
        resource: None,
        at_ms,
    }
}

fn refreshed(new: u8, rotated: Option<u8>, at_ms: i64) -> EventBody {
    EventBody::SessionRefreshed(SessionRefreshed {
        at_ms,
        refresh_token_sha256: vec![new; 32],
        rotated_refresh_token_sha256: rotated.map(|r| vec![r; 32]).unwrap_or_default(),
        resource: "https://h.example/mcp".into(),
    })
}

#[test]
fn the_code_exchange_issues_the_first_refresh_token_once() {
    let start = EventBody::SessionStarted(started());
    check(
        std::slice::from_ref(&start),
        issue("c", 1, 10),
        Ok(Decision::Append(refreshed(1, None, 10))),
    );
    check(
        &[start, refreshed(1, None, 10)],
        issue("c", 2, 20),
        Err(SessionRejected::RefreshTokenAlreadyIssued),
    );
}

#[test]
fn only_the_sessions_own_client_gets_tokens() {
    let start = EventBody::SessionStarted(started());
    check(
        std::slice::from_ref(&start),
        issue("other", 1, 10),
        Err(SessionRejected::WrongClient),
    );
    let mut command = rotate(1, 2, 20);
    if let SessionCommand::RotateRefreshToken { client_id, .. } = &mut command {
        *client_id = Some("other".into());
    }
    check(
        &[start, refreshed(1, None, 10)],
        command,
        Err(SessionRejected::WrongClient),
    );
}

#[test]
fn a_refresh_rotates_the_current_token_and_keeps_the_resource() {
    let history = [EventBody::SessionStarted(started()), refreshed(1, None, 10)];
    check(
        &history,
        rotate(1, 2, 20),
        Ok(Decision::Append(refreshed(2, Some(1), 20))),
    );
}

#[test]
fn a_rotated_out_refresh_token_presented_again_revokes_the_session() {
    let history = [
        EventBody::SessionStarted(started()),
        refreshed(1, None, 10),
        refreshed(2, Some(1), 20),
    ];
    check(
        &history,
        rotate(1, 3, 30),
        Ok(Decision::Append(revoked(REFRESH_TOKEN_REUSED))),
    );
    let mut after = history.to_vec();
    after.push(revoked(REFRESH_TOKEN_REUSED));
    check(&after, rotate(2, 3, 40), Err(SessionRejected::Revoked));
}

#[test]
fn an_unknown_refresh_token_is_refused_without_revoking() {
    let history = [EventBody::SessionStarted(started()), refreshed(1, None, 10)];
    check(
        &history,
        rotate(9, 3, 20),
        Err(SessionRejected::UnknownRefreshToken),
    );
}

#[test]
fn an_expired_session_gets_no_tokens() {
    // started() is idle after 60 s and absolutely over after 120 s from t = 1 ms.
    let start = EventBody::SessionStarted(started());
    check(
        std::slice::from_ref(&start),
        issue("c", 1, 61_001),
        Err(SessionRejected::Expired),
    );
    // Use moves the idle deadline, never the absolute one.
    let history = [
        start,
        refreshed(1, None, 50_000),
        refreshed(2, Some(1), 100_000),
    ];
    check(
        &history,
        rotate(2, 3, 110_000),
        Ok(Decision::Append(refreshed(3, Some(2), 110_000))),
    );
    check(
        &history,
        rotate(2, 3, 120_001),
        Err(SessionRejected::Expired),
    );
}

#[test]
fn tokens_of_an_unknown_session_are_not_found() {
    check(&[], issue("c", 1, 10), Err(SessionRejected::NotFound));
    check(&[], rotate(1, 2, 10), Err(SessionRejected::NotFound));
}

#[test]
fn a_refresh_for_another_resource_is_refused_before_rotating() {
    let history = [EventBody::SessionStarted(started()), refreshed(1, None, 10)];
    let with = |resource: &str| SessionCommand::RotateRefreshToken {
        client_id: None,
        presented_sha256: vec![1; 32],
        refresh_token_sha256: vec![2; 32],
        resource: Some(resource.into()),
        at_ms: 20,
    };
    check(
        &history,
        with("https://h.example/mcp/other"),
        Err(SessionRejected::WrongResource),
    );
    check(
        &history,
        with("https://h.example/mcp"),
        Ok(Decision::Append(refreshed(2, Some(1), 20))),
    );
}
