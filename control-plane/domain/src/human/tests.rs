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

fn live_unverified() -> Vec<EventBody> {
    vec![EventBody::HumanAdded(HumanAdded {
        human_id: "H1".into(),
        email: "ada@example.com".into(),
        pre_authorized: false,
    })]
}

fn code_issued(sealed: &[u8], expires_at_ms: i64) -> EventBody {
    EventBody::HumanVerificationCodeIssued(HumanVerificationCodeIssued {
        code_sealed: sealed.to_vec(),
        expires_at_ms,
    })
}

fn verify(matched: Option<&[u8]>, at_ms: i64) -> HumanCommand {
    HumanCommand::Verify {
        matched_code_sealed: matched.map(<[u8]>::to_vec),
        at_ms,
    }
}

#[test]
fn an_unverified_account_may_be_claimed_again_by_a_later_sign_up() {
    let mut history = live_unverified();
    history.push(EventBody::HumanPasswordSet(HumanPasswordSet {
        password_hash_sealed: b"first".to_vec(),
    }));
    check(
        &history,
        HumanCommand::SetPassword {
            password_hash_sealed: b"second".to_vec(),
        },
        Ok(Decision::Append(EventBody::HumanPasswordSet(
            HumanPasswordSet {
                password_hash_sealed: b"second".to_vec(),
            },
        ))),
    );
}

#[test]
fn the_current_code_verifies_the_email_and_a_verified_account_cannot_be_reclaimed() {
    let mut history = live_unverified();
    history.push(code_issued(b"c1", 1_000));
    check(
        &history,
        verify(Some(b"c1"), 500),
        Ok(Decision::Append(EventBody::HumanEmailVerified(
            HumanEmailVerified {},
        ))),
    );
    history.push(EventBody::HumanEmailVerified(HumanEmailVerified {}));
    check(
        &history,
        HumanCommand::SetPassword {
            password_hash_sealed: b"attacker".to_vec(),
        },
        Err(HumanRejected::AlreadyVerified),
    );
    check(
        &history,
        HumanCommand::IssueCode {
            code_sealed: b"c2".to_vec(),
            expires_at_ms: 2_000,
        },
        Err(HumanRejected::AlreadyVerified),
    );
}

#[test]
fn a_new_code_voids_the_old_one() {
    let mut history = live_unverified();
    history.push(code_issued(b"c1", 1_000));
    history.push(code_issued(b"c2", 1_000));
    check(
        &history,
        verify(Some(b"c1"), 500),
        Ok(Decision::Append(EventBody::HumanVerificationFailed(
            HumanVerificationFailed {},
        ))),
    );
}

#[test]
fn an_expired_code_is_refused() {
    let mut history = live_unverified();
    history.push(code_issued(b"c1", 1_000));
    check(
        &history,
        verify(Some(b"c1"), 1_000),
        Err(HumanRejected::CodeExpired),
    );
}

#[test]
fn wrong_guesses_are_counted_and_then_the_code_is_dead() {
    let mut history = live_unverified();
    history.push(code_issued(b"c1", 1_000));
    for _ in 0..MAX_CODE_ATTEMPTS {
        check(
            &history,
            verify(None, 10),
            Ok(Decision::Append(EventBody::HumanVerificationFailed(
                HumanVerificationFailed {},
            ))),
        );
        history.push(EventBody::HumanVerificationFailed(
            HumanVerificationFailed {},
        ));
    }
    // Even the right code no longer works.
    check(
        &history,
        verify(Some(b"c1"), 10),
        Err(HumanRejected::TooManyAttempts),
    );
    // A new code starts over.
    history.push(code_issued(b"c2", 1_000));
    check(
        &history,
        verify(Some(b"c2"), 10),
        Ok(Decision::Append(EventBody::HumanEmailVerified(
            HumanEmailVerified {},
        ))),
    );
}

#[test]
fn no_code_no_verification() {
    check(
        &live_unverified(),
        verify(Some(b"c1"), 10),
        Err(HumanRejected::NoCode),
    );
    check(
        &[],
        HumanCommand::SetPassword {
            password_hash_sealed: b"x".to_vec(),
        },
        Err(HumanRejected::NotFound),
    );
}

fn sign_in_code(hash: &[u8], expires_at_ms: i64) -> EventBody {
    EventBody::HumanSignInCodeIssued(HumanSignInCodeIssued {
        code_hash: hash.to_vec(),
        expires_at_ms,
    })
}

fn redeem(matched: Option<&[u8]>, at_ms: i64) -> HumanCommand {
    HumanCommand::RedeemSignInCode {
        matched_code_hash: matched.map(<[u8]>::to_vec),
        at_ms,
    }
}

fn verified() -> Vec<EventBody> {
    let mut history = live_unverified();
    history.push(code_issued(b"v", 100));
    history.push(EventBody::HumanEmailVerified(HumanEmailVerified {}));
    history
}

#[test]
fn a_sign_in_code_is_issued_to_verified_and_unverified_accounts() {
    for history in [live_unverified(), verified()] {
        check(
            &history,
            HumanCommand::IssueSignInCode {
                code_hash: b"h1".to_vec(),
                expires_at_ms: 300,
            },
            Ok(Decision::Append(sign_in_code(b"h1", 300))),
        );
    }
    check(
        &[added(), removed()],
        HumanCommand::IssueSignInCode {
            code_hash: b"h1".to_vec(),
            expires_at_ms: 300,
        },
        Err(HumanRejected::NotFound),
    );
}

#[test]
fn the_current_sign_in_code_is_redeemed_once_and_proves_the_mailbox() {
    let mut history = live_unverified();
    history.push(sign_in_code(b"h1", 300));
    check(
        &history,
        redeem(Some(b"h1"), 299),
        Ok(Decision::Append(EventBody::HumanSignInCodeRedeemed(
            HumanSignInCodeRedeemed {},
        ))),
    );
    history.push(EventBody::HumanSignInCodeRedeemed(
        HumanSignInCodeRedeemed {},
    ));
    let state = history.iter().fold(Human::default(), Human::evolve);
    let Human::Live { account, .. } = &state else {
        panic!("{state:?}");
    };
    assert!(account.email_verified, "redeeming proves the mailbox");
    // Single use: the same code again finds nothing.
    check(
        &history,
        redeem(Some(b"h1"), 299),
        Err(HumanRejected::NoCode),
    );
}

#[test]
fn a_new_sign_in_code_voids_the_old_and_old_or_late_codes_fail() {
    let mut history = verified();
    history.push(sign_in_code(b"old", 300));
    history.push(sign_in_code(b"new", 600));
    check(
        &history,
        redeem(Some(b"old"), 100),
        Ok(Decision::Append(EventBody::HumanSignInCodeFailed(
            HumanSignInCodeFailed {},
        ))),
    );
    check(
        &history,
        redeem(Some(b"new"), 600),
        Err(HumanRejected::CodeExpired),
    );
}

#[test]
fn wrong_sign_in_codes_are_counted_and_then_the_code_is_dead() {
    let mut history = verified();
    history.push(sign_in_code(b"h1", 300));
    for _ in 0..MAX_CODE_ATTEMPTS {
        check(
            &history,
            redeem(None, 100),
            Ok(Decision::Append(EventBody::HumanSignInCodeFailed(
                HumanSignInCodeFailed {},
            ))),
        );
        history.push(EventBody::HumanSignInCodeFailed(HumanSignInCodeFailed {}));
    }
    check(
        &history,
        redeem(Some(b"h1"), 100),
        Err(HumanRejected::TooManyAttempts),
    );
    check(
        &verified(),
        redeem(Some(b"h1"), 100),
        Err(HumanRejected::NoCode),
    );
}

fn link(email: &str) -> HumanCommand {
    HumanCommand::LinkIdentity {
        provider_id: "okta".into(),
        issuer: "https://idp.example".into(),
        subject: "u-1".into(),
        verified_email: email.into(),
    }
}

fn linked() -> EventBody {
    EventBody::HumanIdentityLinked(HumanIdentityLinked {
        provider_id: "okta".into(),
        issuer: "https://idp.example".into(),
        subject: "u-1".into(),
        email: "ada@example.com".into(),
    })
}

fn account_after(history: &[EventBody]) -> Account {
    match history.iter().fold(Human::default(), Human::evolve) {
        Human::Live { account, .. } => account,
        other => panic!("not live: {other:?}"),
    }
}

#[test]
fn an_identity_links_once_and_only_with_the_humans_own_verified_email() {
    check(
        &[added()],
        link("ada@example.com"),
        Ok(Decision::Append(linked())),
    );
    check(
        &[added(), linked()],
        link("ada@example.com"),
        Ok(Decision::Unchanged),
    );
    check(
        &[added()],
        link("eve@example.com"),
        Err(HumanRejected::EmailMismatch),
    );
    check(
        &[added(), removed()],
        link("ada@example.com"),
        Err(HumanRejected::NotFound),
    );
}

#[test]
fn a_mailbox_proven_by_a_provider_or_a_sign_in_code_voids_a_password_set_before_the_proof() {
    let password = EventBody::HumanPasswordSet(HumanPasswordSet {
        password_hash_sealed: b"phc".to_vec(),
    });
    let mut squatted = live_unverified();
    squatted.push(password.clone());
    assert!(account_after(&squatted).password_hash_sealed.is_some());

    let mut by_provider = squatted.clone();
    by_provider.push(linked());
    let account = account_after(&by_provider);
    assert!(account.email_verified);
    assert_eq!(account.password_hash_sealed, None);
    assert_eq!(account.identities.len(), 1);

    let mut by_code = squatted;
    by_code.push(sign_in_code(b"h", 10));
    by_code.push(EventBody::HumanSignInCodeRedeemed(
        HumanSignInCodeRedeemed {},
    ));
    let account = account_after(&by_code);
    assert!(account.email_verified);
    assert_eq!(account.password_hash_sealed, None);

    // A password whose own sign-up code proved the mailbox stays.
    let mut verified = live_unverified();
    verified.push(password);
    verified.push(code_issued(b"v", 100));
    verified.push(EventBody::HumanEmailVerified(HumanEmailVerified {}));
    verified.push(linked());
    assert!(account_after(&verified).password_hash_sealed.is_some());
}

fn passkey(id: &[u8], json: &str) -> (Vec<u8>, String) {
    (id.to_vec(), json.to_owned())
}

#[test]
fn a_verified_human_registers_distinct_passkeys_and_only_those_sign_in() {
    let (id, json) = passkey(b"cred-1", "{\"counter\":0}");
    let register = HumanCommand::RegisterPasskey {
        credential_id: id.clone(),
        passkey_json: json.clone(),
    };
    let registered = EventBody::HumanPasskeyRegistered(HumanPasskeyRegistered {
        credential_id: id.clone(),
        passkey_json: json,
    });
    check(
        &live_unverified(),
        register.clone(),
        Err(HumanRejected::NotVerified),
    );
    check(
        &verified(),
        register.clone(),
        Ok(Decision::Append(registered.clone())),
    );
    let mut with_key = verified();
    with_key.push(registered);
    check(&with_key, register, Err(HumanRejected::PasskeyExists));

    let used = HumanCommand::UsePasskey {
        credential_id: id.clone(),
        passkey_json: "{\"counter\":1}".into(),
    };
    check(
        &with_key,
        used,
        Ok(Decision::Append(EventBody::HumanPasskeyUsed(
            HumanPasskeyUsed {
                credential_id: id,
                passkey_json: "{\"counter\":1}".into(),
            },
        ))),
    );
    check(
        &with_key,
        HumanCommand::UsePasskey {
            credential_id: b"other".to_vec(),
            passkey_json: "{}".into(),
        },
        Err(HumanRejected::UnknownPasskey),
    );
}
