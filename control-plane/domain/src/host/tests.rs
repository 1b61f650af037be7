//! Given events, when a command, then events or a refusal.

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
        settings: Some(permitted()),
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

fn change(settings: HostSettings) -> HostCommand {
    HostCommand::ChangeSettings { settings }
}

fn changed(settings: HostSettings) -> EventBody {
    EventBody::HostSettingsChanged(HostSettingsChanged {
        settings: Some(settings),
    })
}

fn permitted() -> HostSettings {
    HostSettings {
        tool_visibility: portcullis_proto::events::v1::ToolVisibility::Permitted as i32,
        auth: Some(portcullis_proto::events::v1::HostAuthSettings {
            password: Some(true),
            email_otp: Some(false),
            passkeys: Some(false),
            ..Default::default()
        }),
        ..HostSettings::default()
    }
}

#[test]
fn settings_stored_before_sign_in_rules_equal_their_defaults() {
    let legacy = EventBody::HostCreated(HostCreated {
        host_id: "acme-pink-panda-6942".into(),
        org_id: "O1".into(),
        prefix: "acme".into(),
        is_default: false,
        settings: Some(HostSettings {
            tool_visibility: portcullis_proto::events::v1::ToolVisibility::Permitted as i32,
            ..HostSettings::default()
        }),
    });
    check(
        std::slice::from_ref(&legacy),
        change(permitted()),
        Ok(Decision::Unchanged),
    );
    let otp = HostSettings {
        auth: Some(portcullis_proto::events::v1::HostAuthSettings {
            email_otp: Some(true),
            ..Default::default()
        }),
        ..HostSettings::default()
    };
    let expected = HostSettings {
        auth: Some(portcullis_proto::events::v1::HostAuthSettings {
            password: Some(true),
            email_otp: Some(true),
            passkeys: Some(false),
            ..Default::default()
        }),
        ..permitted()
    };
    check(
        &[legacy],
        change(otp),
        Ok(Decision::Append(changed(expected))),
    );
}

#[test]
fn created_settings_are_stored_normalized() {
    let state = [created()].iter().fold(Host::default(), Host::evolve);
    let given = HostSettings {
        allowed_origins: vec!["HTTPS://App.Example.com/".into()],
        ..HostSettings::default()
    };
    let expected = HostSettings {
        allowed_origins: vec!["https://app.example.com".into()],
        ..permitted()
    };
    assert_eq!(
        state.decide(&change(given)),
        Ok(Decision::Append(changed(expected)))
    );
}

#[test]
fn changing_settings_to_what_they_are_changes_nothing() {
    check(
        &[created()],
        change(HostSettings::default()),
        Ok(Decision::Unchanged),
    );
}

#[test]
fn invalid_settings_are_refused_with_the_offending_setting() {
    let settings = HostSettings {
        session_idle_seconds: Some(1),
        ..HostSettings::default()
    };
    check(
        &[created()],
        change(settings),
        Err(HostRejected::InvalidSettings(
            crate::validate::InvalidSettings::IdleOutOfRange,
        )),
    );
}

#[test]
fn a_deleted_host_is_gone_for_every_command() {
    check(
        &[created()],
        HostCommand::Delete,
        Ok(Decision::Append(EventBody::HostDeleted(HostDeleted {}))),
    );
    let deleted = EventBody::HostDeleted(HostDeleted {});
    check(
        &[created(), deleted.clone()],
        HostCommand::Delete,
        Err(HostRejected::NotFound),
    );
    check(
        &[created(), deleted],
        change(HostSettings::default()),
        Err(HostRejected::NotFound),
    );
    check(&[], HostCommand::Delete, Err(HostRejected::NotFound));
}

#[test]
fn a_patch_changes_only_the_settings_it_names() {
    let patch = SettingsPatch {
        dynamic_mcps: Some(true),
        session_idle_seconds: Some(3600),
        ..SettingsPatch::default()
    };
    let expected = HostSettings {
        dynamic_mcps: true,
        session_idle_seconds: Some(3600),
        ..permitted()
    };
    check(
        &[created()],
        HostCommand::PatchSettings(patch.clone()),
        Ok(Decision::Append(changed(expected.clone()))),
    );
    check(
        &[created(), changed(expected)],
        HostCommand::PatchSettings(patch),
        Ok(Decision::Unchanged),
    );
}

fn key(kid: &str) -> HostSigningKeyAdded {
    let mut public_key = vec![0x04];
    public_key.extend([7u8; 64]);
    HostSigningKeyAdded {
        kid: kid.into(),
        algorithm: "ES256".into(),
        public_key,
        sealed_private_key: vec![1, 2, 3],
        key_id: "mk1".into(),
    }
}

fn added(kid: &str) -> EventBody {
    EventBody::HostSigningKeyAdded(key(kid))
}

fn retire(kid: &str) -> HostCommand {
    HostCommand::RetireSigningKey { kid: kid.into() }
}

fn retired(kid: &str) -> EventBody {
    EventBody::HostSigningKeyRetired(HostSigningKeyRetired { kid: kid.into() })
}

#[test]
fn an_older_signing_key_retires_and_the_one_in_use_does_not() {
    let two = [created(), added("k1"), added("k2")];
    check(&two, retire("k1"), Ok(Decision::Append(retired("k1"))));
    check(
        &two,
        retire("k2"),
        Err(HostRejected::SigningKeyInUse("k2".into())),
    );
    check(
        &two,
        retire("k9"),
        Err(HostRejected::NoSuchSigningKey("k9".into())),
    );
    check(
        &[created(), added("k1")],
        retire("k1"),
        Err(HostRejected::SigningKeyInUse("k1".into())),
    );
    let after = [created(), added("k1"), added("k2"), retired("k1")];
    check(&after, retire("k1"), Ok(Decision::Unchanged));
    check(&[], retire("k1"), Err(HostRejected::NotFound));
}

#[test]
fn a_retired_key_leaves_the_keys_in_use_and_never_comes_back() {
    let history = [created(), added("k1"), added("k2"), retired("k1")];
    let state = history.iter().fold(Host::default(), Host::evolve);
    let Host::Live {
        signing_keys,
        retired_kids,
        ..
    } = &state
    else {
        panic!("live host expected, got {state:?}");
    };
    let kids: Vec<&str> = signing_keys.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(kids, ["k2"]);
    assert_eq!(retired_kids, &["k1".to_owned()]);
    assert_eq!(
        state.decide(&HostCommand::AddSigningKey(key("k1"))),
        Err(HostRejected::InvalidSigningKey(
            "the key id belongs to a retired key"
        ))
    );
    // A late re-delivery of the old key's addition does not revive it.
    let replayed = state.evolve(&added("k1"));
    let Host::Live { signing_keys, .. } = replayed else {
        panic!("live host expected");
    };
    assert_eq!(signing_keys.len(), 1);
}
