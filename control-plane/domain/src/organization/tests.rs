//! Given events, when a command, then events or a refusal.

use super::*;

fn created() -> EventBody {
    EventBody::OrganizationCreated(OrganizationCreated {
        org_id: "default".into(),
        name: "Default".into(),
    })
}

fn assigned(host: &str) -> EventBody {
    EventBody::DefaultHostAssigned(DefaultHostAssigned {
        host_id: host.into(),
    })
}

#[track_caller]
fn check(
    history: &[EventBody],
    command: OrganizationCommand,
    expected: Result<Decision<EventBody>, OrganizationRejected>,
) {
    let state = history
        .iter()
        .fold(Organization::default(), Organization::evolve);
    assert_eq!(state.decide(&command), expected);
}

fn create(name: &str) -> OrganizationCommand {
    OrganizationCommand::Create {
        org_id: "default".into(),
        name: name.into(),
    }
}

fn assign(host: &str) -> OrganizationCommand {
    OrganizationCommand::AssignDefaultHost {
        host_id: host.into(),
    }
}

#[test]
fn creating_an_organization_records_it_once() {
    check(&[], create(" Default "), Ok(Decision::Append(created())));
    check(
        &[created()],
        create("Default"),
        Err(OrganizationRejected::AlreadyExists),
    );
    check(&[], create("  "), Err(OrganizationRejected::InvalidName));
    check(
        &[],
        create(&"x".repeat(101)),
        Err(OrganizationRejected::InvalidName),
    );
}

#[test]
fn a_default_host_is_assigned_once_and_reassigning_it_changes_nothing() {
    check(&[], assign("h1"), Err(OrganizationRejected::NotFound));
    check(
        &[created()],
        assign("h1"),
        Ok(Decision::Append(assigned("h1"))),
    );
    check(
        &[created(), assigned("h1")],
        assign("h1"),
        Ok(Decision::Unchanged),
    );
    check(
        &[created(), assigned("h1")],
        assign("h2"),
        Err(OrganizationRejected::DefaultHostTaken("h1".into())),
    );
}
