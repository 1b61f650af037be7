//! Given events, when a command, then events or a refusal.

use super::*;

fn issue(hash: u8, org_ids: &[&str]) -> AdminTokenCommand {
    AdminTokenCommand::Issue {
        token_id: "T1".into(),
        token_sha256: vec![hash; 32],
        org_ids: org_ids.iter().map(|o| (*o).to_owned()).collect(),
        label: " bootstrap ".into(),
    }
}

fn issued(hash: u8, org_ids: &[&str]) -> EventBody {
    EventBody::AdminTokenIssued(AdminTokenIssued {
        token_id: "T1".into(),
        org_ids: org_ids.iter().map(|o| (*o).to_owned()).collect(),
        token_sha256: vec![hash; 32],
        label: "bootstrap".into(),
    })
}

fn added(org_id: &str) -> EventBody {
    EventBody::AdminTokenOrganizationAdded(AdminTokenOrganizationAdded {
        org_id: org_id.into(),
    })
}

fn add(org_id: &str) -> AdminTokenCommand {
    AdminTokenCommand::AddOrganization {
        org_id: org_id.into(),
    }
}

fn revoked() -> EventBody {
    EventBody::AdminTokenRevoked(AdminTokenRevoked {})
}

#[track_caller]
fn check(
    history: &[EventBody],
    command: AdminTokenCommand,
    expected: Result<Decision<EventBody>, AdminTokenRejected>,
) {
    let state = history
        .iter()
        .fold(AdminToken::default(), AdminToken::evolve);
    assert_eq!(state.decide(&command), expected);
}

#[test]
fn a_token_is_issued_with_its_hash_and_organizations() {
    check(
        &[],
        issue(7, &["O1", "O2", "O1"]),
        Ok(Decision::Append(issued(7, &["O1", "O2"]))),
    );
}

#[test]
fn issuing_the_same_secret_again_changes_nothing() {
    check(
        &[issued(7, &["O1"])],
        issue(7, &["O1"]),
        Ok(Decision::Unchanged),
    );
}

#[test]
fn a_token_id_is_never_bound_to_a_second_secret() {
    check(
        &[issued(7, &["O1"])],
        issue(8, &["O1"]),
        Err(AdminTokenRejected::IdTaken),
    );
}

#[test]
fn a_hash_that_is_not_sha256_is_refused() {
    let mut command = issue(7, &["O1"]);
    if let AdminTokenCommand::Issue { token_sha256, .. } = &mut command {
        token_sha256.truncate(16);
    }
    check(&[], command, Err(AdminTokenRejected::InvalidHash));
}

#[test]
fn a_label_with_control_characters_is_refused() {
    let mut command = issue(7, &["O1"]);
    if let AdminTokenCommand::Issue { label, .. } = &mut command {
        *label = "a\u{0}b".into();
    }
    check(
        &[],
        command,
        Err(AdminTokenRejected::InvalidLabel(
            InvalidText::ControlCharacters,
        )),
    );
}

#[test]
fn a_token_joins_an_organization_once() {
    check(
        &[issued(7, &["O1"])],
        add("O2"),
        Ok(Decision::Append(added("O2"))),
    );
    check(
        &[issued(7, &["O1"]), added("O2")],
        add("O2"),
        Ok(Decision::Unchanged),
    );
    check(&[issued(7, &["O1"])], add("O1"), Ok(Decision::Unchanged));
    let state = [issued(7, &["O1"]), added("O2")]
        .iter()
        .fold(AdminToken::default(), AdminToken::evolve);
    assert!(matches!(state, AdminToken::Live { ref org_ids, .. } if org_ids == &["O1", "O2"]));
}

#[test]
fn a_revoked_token_refuses_everything() {
    check(
        &[issued(7, &["O1"])],
        AdminTokenCommand::Revoke,
        Ok(Decision::Append(revoked())),
    );
    for command in [issue(7, &["O1"]), add("O2"), AdminTokenCommand::Revoke] {
        check(
            &[issued(7, &["O1"]), revoked()],
            command,
            Err(AdminTokenRejected::Revoked),
        );
    }
}

#[test]
fn an_unknown_token_cannot_join_an_organization() {
    check(&[], add("O1"), Err(AdminTokenRejected::NotFound));
}
