//! Given events, when a command, then events or a refusal.

use super::*;

fn add(email: &str) -> HumanCommand {
    HumanCommand::Add {
        human_id: "H1".into(),
        email: email.into(),
        pre_authorized: true,
    }
}

fn added() -> EventBody {
    EventBody::HumanAdded(HumanAdded {
        human_id: "H1".into(),
        email: "ada@example.com".into(),
        pre_authorized: true,
    })
}

fn removed() -> EventBody {
    EventBody::HumanRemoved(HumanRemoved {})
}

#[track_caller]
fn check(
    history: &[EventBody],
    command: HumanCommand,
    expected: Result<Decision<EventBody>, HumanRejected>,
) {
    let state = history.iter().fold(Human::default(), Human::evolve);
    assert_eq!(state.decide(&command), expected);
}

#[test]
fn a_human_is_added_with_a_normalized_email() {
    check(
        &[],
        add("  Ada@Example.COM "),
        Ok(Decision::Append(added())),
    );
}

#[test]
fn an_invalid_email_is_refused() {
    check(
        &[],
        add("ada at example"),
        Err(HumanRejected::InvalidEmail(InvalidEmail::Format)),
    );
}

#[test]
fn a_human_id_is_added_once_even_after_removal() {
    check(
        &[added()],
        add("ada@example.com"),
        Err(HumanRejected::AlreadyExists),
    );
    check(
        &[added(), removed()],
        add("ada@example.com"),
        Err(HumanRejected::AlreadyExists),
    );
}

#[test]
fn a_human_is_removed_once() {
    check(
        &[added()],
        HumanCommand::Remove,
        Ok(Decision::Append(removed())),
    );
    check(
        &[added(), removed()],
        HumanCommand::Remove,
        Err(HumanRejected::NotFound),
    );
    check(&[], HumanCommand::Remove, Err(HumanRejected::NotFound));
}
