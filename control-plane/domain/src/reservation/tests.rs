//! Given events, when a command, then events or a refusal.

use super::*;

fn claim(owner: &str) -> ReservationCommand {
    ReservationCommand::Claim {
        owner: owner.into(),
    }
}

fn release(owner: &str) -> ReservationCommand {
    ReservationCommand::Release {
        owner: owner.into(),
    }
}

fn key_claimed(server_id: &str) -> EventBody {
    EventBody::ServerKeyClaimed(ServerKeyClaimed {
        server_id: server_id.into(),
    })
}

fn key_released() -> EventBody {
    EventBody::ServerKeyReleased(ServerKeyReleased {})
}

fn email_claimed(human_id: &str) -> EventBody {
    EventBody::HumanEmailClaimed(HumanEmailClaimed {
        human_id: human_id.into(),
    })
}

#[track_caller]
fn check<A: Aggregate<Command = ReservationCommand, Rejection = ReservationRejected>>(
    history: &[EventBody],
    command: ReservationCommand,
    expected: Result<Decision<EventBody>, ReservationRejected>,
) {
    let state = history.iter().fold(A::default(), A::evolve);
    assert_eq!(state.decide(&command), expected);
}

#[test]
fn a_free_key_is_claimed_for_its_server() {
    check::<ServerKey>(&[], claim("S1"), Ok(Decision::Append(key_claimed("S1"))));
}

#[test]
fn claiming_a_key_again_for_the_same_server_changes_nothing() {
    check::<ServerKey>(&[key_claimed("S1")], claim("S1"), Ok(Decision::Unchanged));
}

#[test]
fn a_claim_by_another_server_is_refused() {
    check::<ServerKey>(
        &[key_claimed("S1")],
        claim("S2"),
        Err(ReservationRejected::HeldByAnother { owner: "S1".into() }),
    );
}

#[test]
fn only_the_holder_releases_a_key_and_then_anyone_may_claim_it() {
    check::<ServerKey>(
        &[key_claimed("S1")],
        release("S2"),
        Err(ReservationRejected::HeldByAnother { owner: "S1".into() }),
    );
    check::<ServerKey>(
        &[key_claimed("S1")],
        release("S1"),
        Ok(Decision::Append(key_released())),
    );
    check::<ServerKey>(
        &[key_claimed("S1"), key_released()],
        claim("S2"),
        Ok(Decision::Append(key_claimed("S2"))),
    );
}

#[test]
fn releasing_a_free_key_changes_nothing() {
    check::<ServerKey>(&[], release("S1"), Ok(Decision::Unchanged));
}

#[test]
fn emails_are_reserved_for_one_human() {
    check::<HumanEmail>(&[], claim("H1"), Ok(Decision::Append(email_claimed("H1"))));
    check::<HumanEmail>(
        &[email_claimed("H1")],
        claim("H2"),
        Err(ReservationRejected::HeldByAnother { owner: "H1".into() }),
    );
    check::<HumanEmail>(
        &[email_claimed("H1")],
        release("H1"),
        Ok(Decision::Append(EventBody::HumanEmailReleased(
            HumanEmailReleased {},
        ))),
    );
}

#[test]
fn a_server_key_ignores_email_events() {
    let state = ServerKey::default().evolve(&email_claimed("H1"));
    assert_eq!(state, ServerKey(Reservation::Free));
}
