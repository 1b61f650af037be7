//! The human aggregate (`evt.<host>.human.<human_id>`): a person known by a verified email,
//! and their account for the consent flow.
//!
//! Email uniqueness within a host is the `human_email` reservation's job; this aggregate
//! checks the email's form and that a removed human stays removed (ids are never reused).
//!
//! Accounts: a sign-up sets a password (sealed by the caller) and mails a 6-digit code
//! (sealed too); the account can sign in only once a code proved the mailbox. Until then a
//! later sign-up may replace the password, so whoever first types an admin's pre-authorized
//! email gains nothing: only the mailbox owner can verify. A code lasts until its deadline,
//! allows `MAX_CODE_ATTEMPTS` wrong guesses, and a new code voids the old one. The caller
//! opens sealed values (no keys here); `decide` only compares what it was given with the
//! current state.
//!
//! External identities (an account at an identity provider, keyed by issuer and subject)
//! link to the human whose email the provider vouched for; uniqueness of an identity in a
//! host is the `human_identity` reservation's job. A mailbox proven any other way than the
//! sign-up's own code (a redeemed sign-in code, a provider's verified address) voids a
//! password set before the proof: whoever signed up with somebody else's address must not
//! keep a password for the account its owner later claims.

use portcullis_proto::events::v1::{
    HumanAdded, HumanEmailVerified, HumanIdentityLinked, HumanPasskeyRegistered, HumanPasskeyUsed,
    HumanPasswordSet, HumanRemoved, HumanSignInCodeFailed, HumanSignInCodeIssued,
    HumanSignInCodeRedeemed, HumanVerificationCodeIssued, HumanVerificationFailed,
};

use crate::validate::{InvalidEmail, normalize_email};
use crate::{Aggregate, Decision, EventBody};

/// A human's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Human {
    /// Never added.
    #[default]
    Absent,
    /// Known.
    Live {
        /// Normalized email.
        email: String,
        /// Added by an admin before first sign-in.
        pre_authorized: bool,
        /// Their account for the consent flow.
        account: Account,
    },
    /// Removed for good.
    Removed,
}

/// Wrong codes a verification code tolerates; then a new code must be mailed.
pub const MAX_CODE_ATTEMPTS: u32 = 5;

/// A human's sign-in account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Account {
    /// The sealed argon2id PHC string, once chosen.
    pub password_hash_sealed: Option<Vec<u8>>,
    /// Whether a code proved the email.
    pub email_verified: bool,
    /// The current verification code, if one is outstanding.
    pub code: Option<PendingCode>,
    /// The current sign-in code (email OTP), if one is outstanding; `sealed` holds its keyed
    /// hash, never the code.
    pub sign_in_code: Option<PendingCode>,
    /// External identities that sign in as this human.
    pub identities: Vec<LinkedIdentity>,
    /// Passkeys, oldest first.
    pub passkeys: Vec<StoredPasskey>,
}

/// At most this many passkeys per human.
pub const MAX_PASSKEYS: usize = 10;

/// A registered passkey: its credential id and the relying party's record of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPasskey {
    /// The credential id.
    pub credential_id: Vec<u8>,
    /// The record (webauthn-rs `Passkey`, JSON), as last updated.
    pub passkey_json: String,
}

/// An identity at an external provider, linked to a human.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkedIdentity {
    /// The host's provider that linked it.
    pub provider_id: String,
    /// With `subject`, the identity's key.
    pub issuer: String,
    /// The provider's id of the person.
    pub subject: String,
}

/// An outstanding verification code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingCode {
    /// The sealed code.
    pub sealed: Vec<u8>,
    /// Its deadline, milliseconds since the Unix epoch.
    pub expires_at_ms: i64,
    /// Wrong guesses so far.
    pub failed_attempts: u32,
}

/// What can be done to a human.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HumanCommand {
    /// Adds them.
    Add {
        /// Their id (a ULID).
        human_id: String,
        /// Their email (normalized here).
        email: String,
        /// Whether an admin adds them before first sign-in.
        pre_authorized: bool,
    },
    /// Removes them.
    Remove,
    /// Sets the account's password at sign-up; refused once the email is verified.
    SetPassword {
        /// The sealed argon2id PHC string.
        password_hash_sealed: Vec<u8>,
    },
    /// Mails a new code (voiding the old one); refused once the email is verified.
    IssueCode {
        /// The sealed code.
        code_sealed: Vec<u8>,
        /// Its deadline, milliseconds since the Unix epoch.
        expires_at_ms: i64,
    },
    /// Records a verification attempt.
    Verify {
        /// The sealed code the entered one matched (`None`: it matched none). Verified only
        /// if this is still the current code.
        matched_code_sealed: Option<Vec<u8>>,
        /// Now, milliseconds since the Unix epoch.
        at_ms: i64,
    },
    /// Mails a sign-in code (email OTP), voiding the previous one. Allowed whether or not the
    /// email is verified yet: redeeming the code proves the mailbox.
    IssueSignInCode {
        /// The code's keyed hash.
        code_hash: Vec<u8>,
        /// Its deadline, milliseconds since the Unix epoch.
        expires_at_ms: i64,
    },
    /// Links an external identity whose provider vouched for the human's own email. Linking
    /// an identity already linked changes nothing.
    LinkIdentity {
        /// The host's provider.
        provider_id: String,
        /// The identity's issuer.
        issuer: String,
        /// The identity's subject.
        subject: String,
        /// The address the provider verified (normalized): must be the human's.
        verified_email: String,
    },
    /// Registers a passkey (the human is signed in, so the email is verified).
    RegisterPasskey {
        /// The credential id.
        credential_id: Vec<u8>,
        /// The relying party's record of it.
        passkey_json: String,
    },
    /// Records a sign-in with a registered passkey and its updated record.
    UsePasskey {
        /// The credential id.
        credential_id: Vec<u8>,
        /// The record as updated by the sign-in.
        passkey_json: String,
    },
    /// Records a sign-in attempt with a mailed code.
    RedeemSignInCode {
        /// The hash of the current code if the entered one matched it (`None`: no match).
        /// Redeemed only if this is still the current code.
        matched_code_hash: Option<Vec<u8>>,
        /// Now, milliseconds since the Unix epoch.
        at_ms: i64,
    },
}

/// Why a human command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HumanRejected {
    /// The id is taken (now or in the past).
    #[error("human id is already taken")]
    AlreadyExists,
    /// Never added, or removed.
    #[error("human not found")]
    NotFound,
    /// The email is invalid.
    #[error("email: {0}")]
    InvalidEmail(#[from] InvalidEmail),
    /// The email is verified: the account is claimed.
    #[error("the account is already verified")]
    AlreadyVerified,
    /// No code is outstanding (never mailed, or used up by wrong guesses).
    #[error("no verification code is outstanding; ask for a new one")]
    NoCode,
    /// The code's deadline passed.
    #[error("the verification code has expired; ask for a new one")]
    CodeExpired,
    /// Too many wrong guesses for this code.
    #[error("too many wrong codes; ask for a new one")]
    TooManyAttempts,
    /// The provider vouched for another address than the human's.
    #[error("the identity's verified email is not this human's")]
    EmailMismatch,
    /// A passkey needs a verified email.
    #[error("the email is not verified yet")]
    NotVerified,
    /// The credential is registered already.
    #[error("this passkey is registered already")]
    PasskeyExists,
    /// No such passkey.
    #[error("no such passkey")]
    UnknownPasskey,
    /// Too many passkeys.
    #[error("at most {MAX_PASSKEYS} passkeys")]
    TooManyPasskeys,
}

impl Aggregate for Human {
    type Command = HumanCommand;
    type Rejection = HumanRejected;

    fn evolve(self, event: &EventBody) -> Self {
        match (self, event) {
            (Human::Absent, EventBody::HumanAdded(e)) => Human::Live {
                email: e.email.clone(),
                pre_authorized: e.pre_authorized,
                account: Account::default(),
            },
            (Human::Live { .. }, EventBody::HumanRemoved(_)) => Human::Removed,
            (
                Human::Live {
                    email,
                    pre_authorized,
                    mut account,
                },
                body,
            ) => {
                match body {
                    EventBody::HumanPasswordSet(e) => {
                        account.password_hash_sealed = Some(e.password_hash_sealed.clone());
                    }
                    EventBody::HumanVerificationCodeIssued(e) => {
                        account.code = Some(PendingCode {
                            sealed: e.code_sealed.clone(),
                            expires_at_ms: e.expires_at_ms,
                            failed_attempts: 0,
                        });
                    }
                    EventBody::HumanVerificationFailed(_) => {
                        if let Some(code) = &mut account.code {
                            code.failed_attempts = code.failed_attempts.saturating_add(1);
                        }
                    }
                    EventBody::HumanEmailVerified(_) => {
                        account.email_verified = true;
                        account.code = None;
                    }
                    EventBody::HumanSignInCodeIssued(e) => {
                        account.sign_in_code = Some(PendingCode {
                            sealed: e.code_hash.clone(),
                            expires_at_ms: e.expires_at_ms,
                            failed_attempts: 0,
                        });
                    }
                    EventBody::HumanSignInCodeFailed(_) => {
                        if let Some(code) = &mut account.sign_in_code {
                            code.failed_attempts = code.failed_attempts.saturating_add(1);
                        }
                    }
                    EventBody::HumanSignInCodeRedeemed(_) => {
                        prove_mailbox(&mut account);
                        account.sign_in_code = None;
                    }
                    EventBody::HumanPasskeyRegistered(e) => {
                        account.passkeys.push(StoredPasskey {
                            credential_id: e.credential_id.clone(),
                            passkey_json: e.passkey_json.clone(),
                        });
                    }
                    EventBody::HumanPasskeyUsed(e) => {
                        if let Some(stored) = account
                            .passkeys
                            .iter_mut()
                            .find(|stored| stored.credential_id == e.credential_id)
                        {
                            stored.passkey_json.clone_from(&e.passkey_json);
                        }
                    }
                    EventBody::HumanIdentityLinked(e) => {
                        prove_mailbox(&mut account);
                        account.identities.push(LinkedIdentity {
                            provider_id: e.provider_id.clone(),
                            issuer: e.issuer.clone(),
                            subject: e.subject.clone(),
                        });
                    }
                    _ => {}
                }
                Human::Live {
                    email,
                    pre_authorized,
                    account,
                }
            }
            (state, _) => state,
        }
    }

    fn decide(&self, command: &HumanCommand) -> Result<Decision<EventBody>, HumanRejected> {
        match (self, command) {
            (
                Human::Absent,
                HumanCommand::Add {
                    human_id,
                    email,
                    pre_authorized,
                },
            ) => Ok(Decision::Append(EventBody::HumanAdded(HumanAdded {
                human_id: human_id.clone(),
                email: normalize_email(email)?,
                pre_authorized: *pre_authorized,
            }))),
            (Human::Live { .. } | Human::Removed, HumanCommand::Add { .. }) => {
                Err(HumanRejected::AlreadyExists)
            }
            (Human::Live { .. }, HumanCommand::Remove) => {
                Ok(Decision::Append(EventBody::HumanRemoved(HumanRemoved {})))
            }
            (Human::Absent | Human::Removed, HumanCommand::Remove) => Err(HumanRejected::NotFound),
            (Human::Absent | Human::Removed, _) => Err(HumanRejected::NotFound),
            (Human::Live { account, .. }, HumanCommand::SetPassword { .. })
            | (Human::Live { account, .. }, HumanCommand::IssueCode { .. })
                if account.email_verified =>
            {
                Err(HumanRejected::AlreadyVerified)
            }
            (
                Human::Live { .. },
                HumanCommand::IssueSignInCode {
                    code_hash,
                    expires_at_ms,
                },
            ) => Ok(Decision::Append(EventBody::HumanSignInCodeIssued(
                HumanSignInCodeIssued {
                    code_hash: code_hash.clone(),
                    expires_at_ms: *expires_at_ms,
                },
            ))),
            (
                Human::Live { account, .. },
                HumanCommand::RegisterPasskey {
                    credential_id,
                    passkey_json,
                },
            ) => {
                if !account.email_verified {
                    return Err(HumanRejected::NotVerified);
                }
                if account
                    .passkeys
                    .iter()
                    .any(|stored| stored.credential_id == *credential_id)
                {
                    return Err(HumanRejected::PasskeyExists);
                }
                if account.passkeys.len() >= MAX_PASSKEYS {
                    return Err(HumanRejected::TooManyPasskeys);
                }
                Ok(Decision::Append(EventBody::HumanPasskeyRegistered(
                    HumanPasskeyRegistered {
                        credential_id: credential_id.clone(),
                        passkey_json: passkey_json.clone(),
                    },
                )))
            }
            (
                Human::Live { account, .. },
                HumanCommand::UsePasskey {
                    credential_id,
                    passkey_json,
                },
            ) => {
                if !account
                    .passkeys
                    .iter()
                    .any(|stored| stored.credential_id == *credential_id)
                {
                    return Err(HumanRejected::UnknownPasskey);
                }
                Ok(Decision::Append(EventBody::HumanPasskeyUsed(
                    HumanPasskeyUsed {
                        credential_id: credential_id.clone(),
                        passkey_json: passkey_json.clone(),
                    },
                )))
            }
            (
                Human::Live { email, account, .. },
                HumanCommand::LinkIdentity {
                    provider_id,
                    issuer,
                    subject,
                    verified_email,
                },
            ) => {
                if verified_email != email {
                    return Err(HumanRejected::EmailMismatch);
                }
                if account
                    .identities
                    .iter()
                    .any(|linked| linked.issuer == *issuer && linked.subject == *subject)
                {
                    return Ok(Decision::Unchanged);
                }
                Ok(Decision::Append(EventBody::HumanIdentityLinked(
                    HumanIdentityLinked {
                        provider_id: provider_id.clone(),
                        issuer: issuer.clone(),
                        subject: subject.clone(),
                        email: email.clone(),
                    },
                )))
            }
            (
                Human::Live { account, .. },
                HumanCommand::RedeemSignInCode {
                    matched_code_hash,
                    at_ms,
                },
            ) => {
                let Some(code) = &account.sign_in_code else {
                    return Err(HumanRejected::NoCode);
                };
                if code.failed_attempts >= MAX_CODE_ATTEMPTS {
                    return Err(HumanRejected::TooManyAttempts);
                }
                if *at_ms >= code.expires_at_ms {
                    return Err(HumanRejected::CodeExpired);
                }
                if matched_code_hash.as_deref() == Some(code.sealed.as_slice()) {
                    Ok(Decision::Append(EventBody::HumanSignInCodeRedeemed(
                        HumanSignInCodeRedeemed {},
                    )))
                } else {
                    Ok(Decision::Append(EventBody::HumanSignInCodeFailed(
                        HumanSignInCodeFailed {},
                    )))
                }
            }
            (
                Human::Live { .. },
                HumanCommand::SetPassword {
                    password_hash_sealed,
                },
            ) => Ok(Decision::Append(EventBody::HumanPasswordSet(
                HumanPasswordSet {
                    password_hash_sealed: password_hash_sealed.clone(),
                },
            ))),
            (
                Human::Live { .. },
                HumanCommand::IssueCode {
                    code_sealed,
                    expires_at_ms,
                },
            ) => Ok(Decision::Append(EventBody::HumanVerificationCodeIssued(
                HumanVerificationCodeIssued {
                    code_sealed: code_sealed.clone(),
                    expires_at_ms: *expires_at_ms,
                },
            ))),
            (
                Human::Live { account, .. },
                HumanCommand::Verify {
                    matched_code_sealed,
                    at_ms,
                },
            ) => {
                if account.email_verified {
                    return Err(HumanRejected::AlreadyVerified);
                }
                let Some(code) = &account.code else {
                    return Err(HumanRejected::NoCode);
                };
                if code.failed_attempts >= MAX_CODE_ATTEMPTS {
                    return Err(HumanRejected::TooManyAttempts);
                }
                if *at_ms >= code.expires_at_ms {
                    return Err(HumanRejected::CodeExpired);
                }
                if matched_code_sealed.as_deref() == Some(code.sealed.as_slice()) {
                    Ok(Decision::Append(EventBody::HumanEmailVerified(
                        HumanEmailVerified {},
                    )))
                } else {
                    Ok(Decision::Append(EventBody::HumanVerificationFailed(
                        HumanVerificationFailed {},
                    )))
                }
            }
        }
    }
}

/// The mailbox was proven by other means than the sign-up's code: the email is verified, and
/// a password chosen before any proof (by whoever typed the address) is void.
fn prove_mailbox(account: &mut Account) {
    if !account.email_verified {
        account.password_hash_sealed = None;
    }
    account.email_verified = true;
    account.code = None;
}

#[cfg(test)]
mod tests;
