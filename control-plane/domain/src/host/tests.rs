//! Given events, when a command, then events or a refusal.

use portcullis_proto::events::v1::HostDeleted;

use super::*;

fn create() -> HostCommand {
    HostCommand::Create {
        host_id: "acme-pink-panda-6942".into(),
        org_id: "O1".into(),
        prefix: "acme".into(),
        is_default: false,
        settings: HostSettings::default(),
    }
}

fn created() -> EventBody {
    EventBody::HostCreated(HostCreated {
        host_id: "acme-pink-panda-6942".into(),
        org_id: "O1".into(),
        prefix: "acme".into(),
        is_default: false,
        settings: Some(HostSettings::default()),
    })
}

#[track_caller]
fn check(
    history: &[EventBody],
    command: HostCommand,
    expected: Result<Decision<EventBody>, HostRejected>,
) {
    let state = history.iter().fold(Host::default(), Host::evolve);
    assert_eq!(state.decide(&command), expected);
}

#[test]
fn a_host_is_created_once_and_its_id_is_never_reused() {
    check(&[], create(), Ok(Decision::Append(created())));
    check(&[created()], create(), Err(HostRejected::AlreadyExists));
    let deleted = EventBody::HostDeleted(HostDeleted {});
    check(
        &[created(), deleted],
        create(),
        Err(HostRejected::AlreadyExists),
    );
}
