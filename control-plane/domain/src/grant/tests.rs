//! Given events, when a command, then events or a refusal.

use portcullis_proto::TrustLevel::{High, Low, Medium};

use super::*;

fn put(level: TrustLevel) -> GrantCommand {
    GrantCommand::Put {
        human_id: "H1".into(),
        server_id: "S1".into(),
        max_trust_level: level,
    }
}

fn issued(level: TrustLevel) -> EventBody {
    EventBody::GrantIssued(GrantIssued {
        human_id: "H1".into(),
        server_id: "S1".into(),
        max_trust_level: level.into(),
    })
}

fn changed(level: TrustLevel) -> EventBody {
    EventBody::GrantChanged(GrantChanged {
        max_trust_level: level.into(),
    })
}

fn revoked() -> EventBody {
    EventBody::GrantRevoked(GrantRevoked {})
}

#[track_caller]
fn check(
    history: &[EventBody],
    command: GrantCommand,
    expected: Result<Decision<EventBody>, GrantRejected>,
) {
    let state = history.iter().fold(Grant::default(), Grant::evolve);
    assert_eq!(state.decide(&command), expected);
}

#[test]
fn putting_a_grant_issues_it() {
    check(&[], put(Medium), Ok(Decision::Append(issued(Medium))));
}

#[test]
fn putting_another_level_changes_it() {
    check(
        &[issued(Medium)],
        put(High),
        Ok(Decision::Append(changed(High))),
    );
    check(
        &[issued(Medium), changed(High)],
        put(Low),
        Ok(Decision::Append(changed(Low))),
    );
}

#[test]
fn putting_the_same_level_again_changes_nothing() {
    check(&[issued(Medium)], put(Medium), Ok(Decision::Unchanged));
    check(
        &[issued(Medium), changed(High)],
        put(High),
        Ok(Decision::Unchanged),
    );
}

#[test]
fn a_revoked_grant_can_be_issued_again() {
    check(
        &[issued(Medium)],
        GrantCommand::Revoke,
        Ok(Decision::Append(revoked())),
    );
    check(
        &[issued(Medium), revoked()],
        put(Medium),
        Ok(Decision::Append(issued(Medium))),
    );
}

#[test]
fn revoking_a_grant_that_is_not_in_force_is_refused() {
    check(&[], GrantCommand::Revoke, Err(GrantRejected::NotFound));
    check(
        &[issued(Low), revoked()],
        GrantCommand::Revoke,
        Err(GrantRejected::NotFound),
    );
}
