//! Given events, when folded into one key, then this value: the folds' behaviour as data.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use std::collections::BTreeMap;

use portcullis_proto::TrustLevel::{High, Low, Medium};
use portcullis_proto::events::v1 as pb;

use super::*;
use crate::models::SignInMethod;
use crate::test_events::*;

/// Folds `history` into one key as the projector would, the n-th event at sequence n.
fn fold<M: ReadModel>(history: &[Event]) -> Option<Versioned<M>> {
    history
        .iter()
        .zip(1..)
        .fold(None, |value, (event, sequence)| {
            apply(value.as_ref(), sequence, event).unwrap().or(value)
        })
}

/// Given `history`, then the key holds `expected`.
#[track_caller]
fn check<M: ReadModel>(history: &[Event], expected: Option<Versioned<M>>) {
    assert_eq!(fold::<M>(history), expected);
}

fn live<M>(applied_through: u64, model: M) -> Option<Versioned<M>> {
    Some(Versioned {
        applied_through,
        state: State::Live(model),
    })
}

fn tombstone<M>(applied_through: u64) -> Option<Versioned<M>> {
    Some(Versioned {
        applied_through,
        state: State::Deleted,
    })
}

fn grant(level: TrustLevel, issued_sequence: u64) -> Grant {
    Grant {
        human_id: HUMAN.into(),
        server_id: SERVER.into(),
        max_trust_level: level,
        issued_sequence,
    }
}

#[test]
fn an_issued_grant_holds_its_ceiling_and_changes_follow() {
    check(&[grant_issued(High)], live(1, grant(High, 1)));
    check(
        &[grant_issued(High), grant_changed(Low)],
        live(2, grant(Low, 1)),
    );
}

#[test]
fn a_revoked_grant_is_a_tombstone_not_a_gap() {
    check::<Grant>(&[grant_issued(High), grant_revoked()], tombstone(2));
}

#[test]
fn replaying_the_same_event_twice_changes_nothing() {
    let once = fold::<Grant>(&[grant_issued(Medium), grant_changed(High)]);
    assert_eq!(apply(once.as_ref(), 2, &grant_changed(High)).unwrap(), None);
    assert_eq!(
        apply(once.as_ref(), 1, &grant_issued(Medium)).unwrap(),
        None
    );
}

#[test]
fn replaying_an_old_issue_over_a_tombstone_never_resurrects_the_grant() {
    let revoked = fold::<Grant>(&[grant_issued(High), grant_revoked()]);
    // A crash before the checkpoint moved replays sequence 1 over the tombstone of 2.
    assert_eq!(
        apply(revoked.as_ref(), 1, &grant_issued(High)).unwrap(),
        None
    );
}

#[test]
fn a_grant_issued_again_after_revocation_is_live_again_from_that_issue() {
    check(
        &[grant_issued(High), grant_revoked(), grant_issued(Low)],
        live(3, grant(Low, 3)),
    );
}

#[test]
fn removing_a_human_tombstones_their_grant() {
    check::<Grant>(&[grant_issued(High), human_removed()], tombstone(2));
    check::<Human>(&[human_added(), human_removed()], tombstone(2));
}

#[test]
fn updates_and_deletions_of_nothing_change_nothing() {
    check::<Grant>(&[grant_changed(High)], None);
    check::<Grant>(&[grant_revoked()], None);
    check::<Grant>(
        &[
            grant_issued(High),
            grant_revoked(),
            grant_changed(Low),
            grant_revoked(),
        ],
        tombstone(2),
    );
    check::<Session>(&[session_refreshed(5), session_revoked("x")], None);
}

#[test]
fn an_imported_server_lists_its_tools_and_auth_without_the_secret() {
    let value = fold::<Server>(&[server_imported()]).unwrap();
    let server = value.live().unwrap();
    assert_eq!(
        server.upstream_auth,
        UpstreamAuth::Oauth {
            client_id: "portcullis".into(),
            key_id: "k1".into()
        }
    );
    assert_eq!(
        server.tools.keys().collect::<Vec<_>>(),
        ["delete_repo", "list_issues"]
    );
    let delete = &server.tools["delete_repo"];
    assert_eq!(delete.trust_level, High);
    assert_eq!(delete.input_schema_sha256, "ab".repeat(32));
    assert_eq!(
        delete.classification,
        Classification::Auto {
            matched_keyword: "delete".into(),
            reason: "name contains \"delete\"".into()
        }
    );
    assert!(
        !serde_json::to_string(&value).unwrap().contains("sealed"),
        "no secret in a read model"
    );
}

#[test]
fn tools_are_added_changed_and_removed_by_name() {
    let added = event(Body::ToolAdded(pb::ToolAdded {
        tool: Some(tool("create_issue", Medium, "create")),
    }));
    let demoted = event(Body::ToolChanged(pb::ToolChanged {
        name: "delete_repo".into(),
        trust_level: None,
        enabled: Some(false),
        classification: None,
    }));
    let overridden = event(Body::ToolChanged(pb::ToolChanged {
        name: "list_issues".into(),
        trust_level: Some(Medium.into()),
        enabled: None,
        classification: None,
    }));
    let removed = event(Body::ToolRemoved(pb::ToolRemoved {
        name: "create_issue".into(),
    }));
    let value = fold::<Server>(&[server_imported(), added.clone()]).unwrap();
    assert_eq!(
        value.live().unwrap().tools["create_issue"].trust_level,
        Medium
    );

    let value = fold::<Server>(&[server_imported(), added, demoted, overridden, removed]).unwrap();
    assert_eq!(value.applied_through, 5);
    let tools = &value.live().unwrap().tools;
    assert!(!tools.contains_key("create_issue"));
    assert!(!tools["delete_repo"].enabled);
    assert_eq!(tools["delete_repo"].trust_level, High, "unchanged level");
    assert_eq!(tools["list_issues"].trust_level, Medium);
    assert_eq!(
        tools["list_issues"].classification,
        Classification::AdminOverride,
        "a new level without a stated classification is an admin override"
    );
}

#[test]
fn changing_or_removing_an_unknown_tool_changes_nothing() {
    let changed = event(Body::ToolChanged(pb::ToolChanged {
        name: "nope".into(),
        trust_level: Some(Low.into()),
        enabled: None,
        classification: None,
    }));
    let removed = event(Body::ToolRemoved(pb::ToolRemoved {
        name: "nope".into(),
    }));
    let imported = fold::<Server>(&[server_imported()]);
    check::<Server>(&[server_imported(), changed, removed], imported);
}

#[test]
fn server_details_change_only_what_is_given() {
    let renamed = event(Body::ServerDetailsChanged(pb::ServerDetailsChanged {
        name: Some("GitHub Enterprise".into()),
        description: None,
        timeout: None,
    }));
    let value = fold::<Server>(&[server_imported(), renamed]).unwrap();
    let server = value.live().unwrap();
    assert_eq!(server.name, "GitHub Enterprise");
    assert_eq!(server.description, "Issues and pull requests");
}

#[test]
fn the_upstream_timeout_is_imported_changed_kept_and_cleared() {
    let imported = |timeout_seconds: Option<u64>| {
        let mut imported = server_imported();
        if let Some(Body::ServerImported(e)) = &mut imported.body {
            e.timeout_seconds = timeout_seconds;
        }
        imported
    };
    let changed = |timeout: Option<pb::server_details_changed::Timeout>| {
        event(Body::ServerDetailsChanged(pb::ServerDetailsChanged {
            name: Some("GitHub Enterprise".into()),
            description: None,
            timeout,
        }))
    };
    let set = |seconds| {
        changed(Some(pb::server_details_changed::Timeout::TimeoutSeconds(
            seconds,
        )))
    };
    let cleared = changed(Some(pb::server_details_changed::Timeout::ClearTimeout(
        pb::ClearTimeout {},
    )));
    let renamed = changed(None);
    let timeout = |history: &[Event]| {
        fold::<Server>(history)
            .unwrap()
            .live()
            .unwrap()
            .timeout_seconds
    };

    assert_eq!(
        timeout(&[imported(None)]),
        None,
        "unset: the global default"
    );
    assert_eq!(timeout(&[imported(Some(300))]), Some(300));
    assert_eq!(timeout(&[imported(None), set(5)]), Some(5));
    assert_eq!(timeout(&[imported(Some(300)), set(5)]), Some(5));
    assert_eq!(
        timeout(&[imported(Some(300)), renamed.clone()]),
        Some(300),
        "a change that does not name the timeout keeps it"
    );
    assert_eq!(timeout(&[imported(Some(300)), cleared.clone()]), None);
    assert_eq!(
        timeout(&[imported(None), cleared, set(60), renamed]),
        Some(60)
    );
}

#[test]
fn host_settings_get_their_defaults_resolved() {
    let created = event(Body::HostCreated(pb::HostCreated {
        host_id: HOST.into(),
        org_id: "01JD8X00000RG0000000000000".into(),
        prefix: "acme".into(),
        is_default: true,
        settings: None,
    }));
    let value = fold::<Host>(std::slice::from_ref(&created)).unwrap();
    let settings = &value.live().unwrap().settings;
    assert_eq!(settings.tool_visibility, ToolVisibility::Permitted);
    assert_eq!(settings.session_idle_seconds, 30 * 24 * 3600);
    assert_eq!(settings.session_absolute_seconds, 90 * 24 * 3600);

    let changed = event(Body::HostSettingsChanged(pb::HostSettingsChanged {
        settings: Some(pb::HostSettings {
            dynamic_mcps: true,
            tool_visibility: pb::ToolVisibility::All.into(),
            session_idle_seconds: Some(3600),
            session_absolute_seconds: None,
            allowed_origins: vec!["https://app.example.com".into()],
            auth: Some(pb::HostAuthSettings {
                password: Some(false),
                email_otp: Some(true),
                allowed_domains: Some(pb::DomainRule {
                    domains: vec!["example.com".into()],
                    include_subdomains: true,
                }),
                password_domains: None,
                email_otp_domains: None,
                providers: Vec::new(),
                passkeys: None,
                passkey_domains: None,
            }),
        }),
    }));
    let deleted = event(Body::HostDeleted(pb::HostDeleted {}));
    let value = fold::<Host>(&[created.clone(), changed.clone()]).unwrap();
    let settings = &value.live().unwrap().settings;
    assert!(settings.dynamic_mcps);
    assert_eq!(settings.tool_visibility, ToolVisibility::All);
    assert_eq!(settings.session_idle_seconds, 3600);
    assert_eq!(settings.session_absolute_seconds, 90 * 24 * 3600);
    assert!(!settings.auth.password && settings.auth.email_otp);
    assert!(
        settings
            .auth
            .allows(SignInMethod::EmailOtp, "ada@eu.example.com")
    );
    assert!(
        !settings
            .auth
            .allows(SignInMethod::Password, "ada@example.com")
    );
    check::<Host>(&[created, changed, deleted], tombstone(3));
}

#[test]
fn signing_keys_are_listed_with_their_age_until_retired() {
    let created = event(Body::HostCreated(pb::HostCreated {
        host_id: HOST.into(),
        org_id: "01JD8X00000RG0000000000000".into(),
        prefix: "acme".into(),
        is_default: true,
        settings: None,
    }));
    let added = |kid: &str| {
        event(Body::HostSigningKeyAdded(pb::HostSigningKeyAdded {
            kid: kid.into(),
            algorithm: "ES256".into(),
            public_key: vec![4, 1, 2],
            sealed_private_key: vec![9],
            key_id: "mk".into(),
        }))
    };
    let retired = event(Body::HostSigningKeyRetired(pb::HostSigningKeyRetired {
        kid: "k1".into(),
    }));
    let value = fold::<Host>(&[created.clone(), added("k1"), added("k2")]).unwrap();
    let keys = &value.live().unwrap().signing_keys;
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].kid, "k1");
    assert_eq!(keys[0].public_key, "040102");
    assert_eq!(keys[0].added_at_ms, 1_760_000_000_000);
    let value = fold::<Host>(&[created, added("k1"), added("k2"), retired]).unwrap();
    let kids: Vec<&str> = value
        .live()
        .unwrap()
        .signing_keys
        .iter()
        .map(|key| key.kid.as_str())
        .collect();
    assert_eq!(kids, ["k2"]);
}

#[test]
fn agent_caps_are_set_and_cleared_per_server() {
    let cap = |server: &str, level: TrustLevel| {
        event(Body::AgentCapSet(pb::AgentCapSet {
            server_id: server.into(),
            max_trust_level: level.into(),
        }))
    };
    let cleared = event(Body::AgentCapCleared(pb::AgentCapCleared {
        server_id: "S2".into(),
    }));
    let value = fold::<Agent>(&[
        agent_registered(),
        cap(SERVER, Low),
        cap("S2", Medium),
        cap(SERVER, Medium),
        cleared,
    ])
    .unwrap();
    let agent = value.live().unwrap();
    assert_eq!(agent.caps, BTreeMap::from([(SERVER.to_owned(), Medium)]));
    assert_eq!(agent.human_id.as_deref(), Some(HUMAN));
}

#[test]
fn a_server_revocation_ends_the_sessions_started_before_it_only() {
    let revoked = event(Body::AgentServerRevoked(pb::AgentServerRevoked {
        server_id: SERVER.into(),
    }));
    let value = fold::<Agent>(&[agent_registered(), revoked.clone(), revoked]).unwrap();
    let agent = value.live().unwrap();
    assert_eq!(
        agent.revoked_servers,
        BTreeMap::from([(SERVER.to_owned(), 3)])
    );
    assert!(!agent.session_survives_revocations(SERVER, 2));
    assert!(!agent.session_survives_revocations(SERVER, 3));
    assert!(
        agent.session_survives_revocations(SERVER, 4),
        "re-consent after"
    );
    assert!(agent.session_survives_revocations("other", 1));
}

#[test]
fn a_deleted_agent_is_a_tombstone_and_later_caps_change_nothing() {
    let deleted = event(Body::AgentDeleted(pb::AgentDeleted {}));
    let cap = event(Body::AgentCapSet(pb::AgentCapSet {
        server_id: SERVER.into(),
        max_trust_level: High.into(),
    }));
    check::<Agent>(&[agent_registered(), deleted, cap], tombstone(2));
}

#[test]
fn a_refresh_only_moves_last_use_forward() {
    let start = 1_760_000_000_000;
    let value = fold::<Session>(&[
        session_started(Medium),
        session_refreshed(start + 5_000),
        session_refreshed(start + 1_000),
    ])
    .unwrap();
    assert_eq!(value.applied_through, 2, "the stale refresh wrote nothing");
    let session = value.live().unwrap();
    assert_eq!(session.last_used_ms, start + 5_000);
    assert_eq!(session.started_sequence, 1);
    assert_eq!(session.trust_level, Medium);
}

#[test]
fn a_revoked_session_is_never_refreshed_or_revoked_again() {
    let value = fold::<Session>(&[
        session_started(High),
        session_revoked("admin ended it"),
        session_refreshed(1_770_000_000_000),
        session_revoked("again"),
    ])
    .unwrap();
    assert_eq!(value.applied_through, 2);
    let session = value.live().unwrap();
    assert_eq!(
        session.revoked,
        Some(SessionRevocation {
            reason: "admin ended it".into(),
            at_ms: 1_760_000_000_000
        })
    );
    assert!(!session.is_live_at(session.started_at_ms + 1));
}

#[test]
fn a_session_lives_until_its_idle_or_absolute_deadline() {
    let value = fold::<Session>(&[session_started(Low)]).unwrap();
    let mut session = value.live().unwrap().clone();
    let start = session.started_at_ms;
    let day = 24 * 3600 * 1000;
    assert!(session.is_live_at(start + 29 * day));
    assert!(!session.is_live_at(start + 30 * day), "idle deadline");
    session.last_used_ms = start + 89 * day;
    assert!(session.is_live_at(start + 89 * day + 1));
    assert!(!session.is_live_at(start + 90 * day), "absolute deadline");
}

#[test]
fn admin_tokens_keep_only_the_hash_and_revocation_is_a_tombstone() {
    let issued = event(Body::AdminTokenIssued(pb::AdminTokenIssued {
        token_id: "T1".into(),
        org_ids: vec!["O1".into(), "O2".into()],
        token_sha256: vec![0x0f, 0xa0],
        label: "ci".into(),
    }));
    let value = fold::<AdminToken>(std::slice::from_ref(&issued)).unwrap();
    assert_eq!(value.live().unwrap().token_sha256, "0fa0");
    let revoked = event(Body::AdminTokenRevoked(pb::AdminTokenRevoked {}));
    check::<AdminToken>(&[issued, revoked], tombstone(2));
}

#[test]
fn an_admin_token_gains_an_organization_once() {
    let issued = event(Body::AdminTokenIssued(pb::AdminTokenIssued {
        token_id: "T1".into(),
        org_ids: vec!["O1".into()],
        token_sha256: vec![0x0f, 0xa0],
        label: "ci".into(),
    }));
    let added = event(Body::AdminTokenOrganizationAdded(
        pb::AdminTokenOrganizationAdded {
            org_id: "O2".into(),
        },
    ));
    let value = fold::<AdminToken>(&[issued.clone(), added.clone(), added.clone()]).unwrap();
    assert_eq!(value.live().unwrap().org_ids, vec!["O1", "O2"]);
    assert_eq!(value.applied_through, 3);
    let revoked = event(Body::AdminTokenRevoked(pb::AdminTokenRevoked {}));
    check::<AdminToken>(&[issued, revoked, added], tombstone(2));
}

#[test]
fn reservations_are_claimed_and_released() {
    let claimed = event(Body::ServerKeyClaimed(pb::ServerKeyClaimed {
        server_id: SERVER.into(),
    }));
    let released = event(Body::ServerKeyReleased(pb::ServerKeyReleased {}));
    check(
        std::slice::from_ref(&claimed),
        live(
            1,
            ServerKeyOwner {
                server_id: SERVER.into(),
            },
        ),
    );
    check::<ServerKeyOwner>(&[claimed.clone(), released.clone()], tombstone(2));
    check(
        &[claimed.clone(), released, claimed],
        live(
            3,
            ServerKeyOwner {
                server_id: SERVER.into(),
            },
        ),
    );
    let email = event(Body::HumanEmailClaimed(pb::HumanEmailClaimed {
        human_id: HUMAN.into(),
    }));
    check(
        &[email],
        live(
            1,
            HumanEmailOwner {
                human_id: HUMAN.into(),
            },
        ),
    );
}

#[test]
fn an_invalid_trust_level_is_a_fold_error_not_a_skip() {
    let bad = event(Body::GrantIssued(pb::GrantIssued {
        human_id: HUMAN.into(),
        server_id: SERVER.into(),
        max_trust_level: 0,
    }));
    let err = apply::<Grant>(None, 1, &bad).unwrap_err();
    assert!(
        matches!(
            err,
            FoldError::InvalidTrustLevel {
                field: "max_trust_level",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn stored_values_fold_through_their_json() {
    let first = apply_stored(ModelKind::Grant, None, 1, &grant_issued(High))
        .unwrap()
        .unwrap();
    let second = apply_stored(ModelKind::Grant, Some(&first), 2, &grant_revoked())
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&second).unwrap(),
        serde_json::json!({"deleted": true, "applied_through": 2})
    );
    assert_eq!(
        apply_stored(ModelKind::Grant, Some(&second), 1, &grant_issued(High)).unwrap(),
        None
    );
    let err = apply_stored(ModelKind::Grant, Some(b"not json"), 3, &grant_revoked()).unwrap_err();
    assert!(matches!(err, FoldError::CorruptValue { .. }), "{err:?}");
}

#[test]
fn an_organization_records_its_default_host_and_a_stray_assignment_creates_nothing() {
    let created = event(Body::OrganizationCreated(pb::OrganizationCreated {
        org_id: "default".into(),
        name: "Default organization".into(),
    }));
    let assigned = event(Body::DefaultHostAssigned(pb::DefaultHostAssigned {
        host_id: "default-pink-panda-6942".into(),
    }));
    check(
        &[created, assigned.clone()],
        live(
            2,
            Organization {
                name: "Default organization".into(),
                default_host_id: Some("default-pink-panda-6942".into()),
                host_ids: Vec::new(),
            },
        ),
    );
    check::<Organization>(&[assigned], None);
}

#[test]
fn an_organization_lists_each_host_created_in_it_once() {
    let created = event(Body::OrganizationCreated(pb::OrganizationCreated {
        org_id: "O1".into(),
        name: "Acme".into(),
    }));
    let host = |host_id: &str| {
        event(Body::HostCreated(pb::HostCreated {
            host_id: host_id.into(),
            org_id: "O1".into(),
            prefix: "acme".into(),
            is_default: false,
            settings: None,
        }))
    };
    check(
        &[
            created,
            host("acme-a-b-1000"),
            host("acme-c-d-2000"),
            host("acme-a-b-1000"),
        ],
        live(
            4,
            Organization {
                name: "Acme".into(),
                default_host_id: None,
                host_ids: vec!["acme-a-b-1000".into(), "acme-c-d-2000".into()],
            },
        ),
    );
    check::<Organization>(&[host("acme-a-b-1000")], None);
}

#[test]
fn a_client_id_index_names_the_registered_agent_and_ignores_later_events() {
    let owner = AgentClientOwner {
        agent_id: AGENT.into(),
    };
    check(&[agent_registered()], live(1, owner.clone()));
    check(
        &[
            agent_registered(),
            event(Body::AgentDeleted(pb::AgentDeleted {})),
        ],
        live(1, owner),
    );
    check::<AgentClientOwner>(&[session_refreshed(5)], None);
}

#[test]
fn a_token_refresh_moves_last_use_like_any_refresh() {
    let refreshed = event(Body::SessionRefreshed(pb::SessionRefreshed {
        at_ms: 1_760_000_000_000 + 5_000,
        refresh_token_sha256: vec![1; 32],
        rotated_refresh_token_sha256: vec![2; 32],
        resource: "https://h.example/mcp".into(),
    }));
    let value = fold::<Session>(&[session_started(TrustLevel::Low), refreshed]).unwrap();
    assert_eq!(
        value.live().unwrap().last_used_ms,
        1_760_000_000_000 + 5_000
    );
}

fn rule(domains: &[&str], include_subdomains: bool) -> Option<DomainRule> {
    Some(DomainRule {
        domains: domains.iter().map(|d| (*d).to_owned()).collect(),
        include_subdomains,
    })
}

/// Every combination of the two lists: unset, a match, no match, and subdomains at a label
/// boundary only.
#[test]
fn domain_rules_intersect_the_global_and_the_method_list() {
    let both = |global, own| AuthSettings {
        password: true,
        email_otp: true,
        allowed_domains: global,
        password_domains: own,
        email_otp_domains: None,
        providers: Vec::new(),
        passkeys: false,
        passkey_domains: None,
    };
    let pw = SignInMethod::Password;
    let cases: [(AuthSettings, &str, bool); 12] = [
        (both(None, None), "a@any.example", true),
        (both(rule(&["acme.com"], false), None), "a@acme.com", true),
        (both(rule(&["acme.com"], false), None), "a@other.com", false),
        (both(None, rule(&["acme.com"], false)), "a@acme.com", true),
        (both(None, rule(&["acme.com"], false)), "a@other.com", false),
        (
            both(rule(&["acme.com", "b.com"], false), rule(&["b.com"], false)),
            "a@b.com",
            true,
        ),
        (
            both(rule(&["acme.com", "b.com"], false), rule(&["b.com"], false)),
            "a@acme.com",
            false,
        ),
        (
            both(rule(&["acme.com"], false), rule(&["b.com"], false)),
            "a@acme.com",
            false,
        ),
        (both(rule(&["acme.com"], true), None), "a@eu.acme.com", true),
        (
            both(rule(&["acme.com"], true), None),
            "a@notacme.com",
            false,
        ),
        (
            both(rule(&["acme.com"], false), None),
            "a@eu.acme.com",
            false,
        ),
        (both(rule(&[], false), None), "a@acme.com", false),
    ];
    for (index, (settings, email, allowed)) in cases.iter().enumerate() {
        assert_eq!(
            settings.allows(pw, email),
            *allowed,
            "case {index}: {email}"
        );
    }
    // The other method is judged by the global list alone.
    let settings = both(rule(&["acme.com"], false), rule(&["b.com"], false));
    assert!(settings.allows(SignInMethod::EmailOtp, "a@acme.com"));
    // A method that is off allows nobody.
    let off = AuthSettings {
        email_otp: false,
        ..AuthSettings::default()
    };
    assert!(!off.allows(SignInMethod::EmailOtp, "a@acme.com"));
}

#[test]
fn an_empty_intersection_is_warned_about() {
    let settings = AuthSettings {
        password: true,
        email_otp: true,
        allowed_domains: rule(&["acme.com"], false),
        password_domains: rule(&["b.com"], false),
        email_otp_domains: rule(&["eu.acme.com"], false),
        providers: Vec::new(),
        passkeys: false,
        passkey_domains: None,
    };
    let warnings = settings.warnings();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("password"), "{warnings:?}");
    assert!(warnings[1].contains("email_otp"), "{warnings:?}");
    // With subdomains the email-code list overlaps; an empty list is always nobody.
    let settings = AuthSettings {
        allowed_domains: rule(&["acme.com"], true),
        password_domains: rule(&[], false),
        ..settings
    };
    let warnings = settings.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("password"), "{warnings:?}");
    assert!(AuthSettings::default().warnings().is_empty());
}

fn provider(id: &str, domains: Option<DomainRule>, forced: &[&str]) -> SignInProvider {
    SignInProvider {
        id: id.into(),
        kind: ProviderKind::Oidc,
        display_name: String::new(),
        client_id: "c".into(),
        secret_key_id: "k".into(),
        issuer: Some("https://idp.example".into()),
        tenant: None,
        allowed_tenants: Vec::new(),
        authority: None,
        authorization_endpoint: None,
        token_endpoint: None,
        api_base: None,
        domains,
        force_redirect_domains: forced.iter().map(|d| (*d).to_owned()).collect(),
        saml_sso_url: None,
        saml_entity_id: None,
        saml_certificates: Vec::new(),
    }
}

/// Providers: the global list intersected with the provider's own, and a forced domain
/// belongs to its provider alone (every other method and provider refuses it).
#[test]
fn provider_rules_intersect_and_forced_domains_belong_to_one_provider() {
    let okta = provider("okta", None, &["acme.com"]);
    let google = provider("google", rule(&["acme.com", "partner.com"], false), &[]);
    let settings = AuthSettings {
        allowed_domains: rule(&["acme.com", "partner.com", "other.com"], false),
        providers: vec![okta.clone(), google.clone()],
        ..AuthSettings::default()
    };
    assert_eq!(
        settings
            .forced_provider("a@acme.com")
            .map(|p| p.id.as_str()),
        Some("okta")
    );
    assert_eq!(settings.forced_provider("a@eu.acme.com"), None);
    assert!(settings.allows_provider(&okta, "a@acme.com"));
    assert!(
        !settings.allows_provider(&google, "a@acme.com"),
        "forced to okta"
    );
    assert!(
        !settings.allows(SignInMethod::Password, "a@acme.com"),
        "forced to okta"
    );
    assert!(settings.allows_provider(&google, "a@partner.com"));
    assert!(
        !settings.allows_provider(&google, "a@other.com"),
        "not google's"
    );
    assert!(settings.allows_provider(&okta, "a@other.com"));
    assert!(
        !settings.allows_provider(&okta, "a@elsewhere.com"),
        "not global"
    );
    assert!(settings.allows(SignInMethod::Password, "a@partner.com"));

    let nobody = AuthSettings {
        allowed_domains: rule(&["acme.com"], false),
        providers: vec![provider("gh", rule(&["partner.com"], false), &[])],
        ..AuthSettings::default()
    };
    let warnings = nobody.warnings();
    assert!(
        warnings.iter().any(|w| w.contains("\"gh\"")),
        "{warnings:?}"
    );
}
