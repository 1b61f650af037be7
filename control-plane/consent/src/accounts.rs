//! Account steps of the consent flow: creating an account (a password, a mailed code), the
//! code check, and signing in. Answers never tell whether an email has an account: a
//! sign-up for a verified email looks the same as any other (the owner gets a mail saying
//! so), and a wrong password or an unknown email get the same message after the same work.

use portcullis_commands::control::AccountView;
use portcullis_domain::human::{Account, HumanCommand, HumanRejected};
use portcullis_proto::events::v1::actor;
use rand::Rng as _;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::Inner;
use crate::sealed::{open_bytes, seal_bytes};

/// How long a mailed code is valid, in milliseconds.
pub const CODE_TTL_MS: i64 = 10 * 60 * 1000;

/// How long a mailed sign-in code (email OTP) is valid, in milliseconds.
pub const SIGN_IN_CODE_TTL_MS: i64 = 5 * 60 * 1000;

/// The subject of the sign-in code mail.
pub const SIGN_IN_CODE_SUBJECT: &str = "Your Portcullis sign-in code";

/// The subject of the code mail.
pub const CODE_SUBJECT: &str = "Your Portcullis verification code";
/// The subject of the mail sent when a verified email signs up again.
pub const EXISTS_SUBJECT: &str = "You already have a Portcullis account";

/// Why an account step failed, as the page says it.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Infrastructure failed (logged; the page says try again).
    #[error("{0}")]
    Unavailable(String),
}

fn password_aad(host_id: &str, human_id: &str) -> String {
    format!("human-password:{host_id}:{human_id}")
}

fn code_aad(host_id: &str, human_id: &str) -> String {
    format!("human-code:{host_id}:{human_id}")
}

fn sign_in_code_purpose(host_id: &str, human_id: &str) -> String {
    format!("human-sign-in-code:{host_id}:{human_id}")
}

/// A context for a write the human caused.
pub(crate) fn human_context(human_id: &str) -> portcullis_commands::Context {
    portcullis_commands::Context {
        now_ms: crate::now_ms(),
        actor: actor::Kind::HumanId(human_id.to_owned()),
        correlation_id: crate::ulid_like(),
    }
}

fn unavailable(what: &str, error: impl std::fmt::Display) -> AccountError {
    tracing::warn!(%what, %error, "Account step failed.");
    AccountError::Unavailable(what.to_owned())
}

impl Inner {
    /// Creates (or re-claims, while unverified) the account of `email` with `password` and
    /// mails a code. Returns the human to verify. A verified account is left alone and its
    /// owner is told by mail.
    pub(crate) async fn create_account(
        &self,
        host_id: &str,
        email: &str,
        password: Zeroizing<String>,
    ) -> Result<AccountView, AccountError> {
        let context = crate::context("consent.sign_up");
        let account = self
            .control
            .sign_up_human(&context, host_id, email)
            .await
            .map_err(|e| unavailable("sign up", e))?;
        if account.account.email_verified {
            if self.limits.allow_mail(host_id, &account.email) {
                self.config.mailer.send_later(
                    account.email.clone(),
                    EXISTS_SUBJECT,
                    "Someone (maybe you) tried to create an account with this email address. \
                     You already have one: use \"Sign in\" with your password instead.\n\n\
                     If this was not you, you can ignore this message."
                        .to_owned(),
                );
            }
            // Keep the work the same as a real sign-up.
            let _ = self.passwords.hash(password).await;
            return Ok(account);
        }
        let hash = self
            .passwords
            .hash(password)
            .await
            .map_err(|e| unavailable("hash password", e))?;
        let sealed = seal_bytes(
            &self.config.key_ring,
            hash.as_bytes(),
            &password_aad(host_id, &account.human_id),
        )
        .map_err(|e| unavailable("seal password", e))?;
        let human_context = human_context(&account.human_id);
        match self
            .control
            .account_command(
                &human_context,
                host_id,
                &account.human_id,
                &HumanCommand::SetPassword {
                    password_hash_sealed: sealed,
                },
            )
            .await
            .map_err(|e| unavailable("set password", e))?
        {
            // Verified in between: the same answer as above.
            Ok(_) | Err(HumanRejected::AlreadyVerified) => {}
            Err(other) => return Err(unavailable("set password", other)),
        }
        self.send_code(host_id, &account).await?;
        Ok(account)
    }

    /// Mails a new code to `account` (voiding the old one), within the mail rate limit.
    /// `Ok(false)` when the limit held it back.
    pub(crate) async fn send_code(
        &self,
        host_id: &str,
        account: &AccountView,
    ) -> Result<bool, AccountError> {
        if !self.limits.allow_mail(host_id, &account.email) {
            return Ok(false);
        }
        let code = Zeroizing::new(format!("{:06}", rand::rng().random_range(0..1_000_000u32)));
        let sealed = seal_bytes(
            &self.config.key_ring,
            code.as_bytes(),
            &code_aad(host_id, &account.human_id),
        )
        .map_err(|e| unavailable("seal code", e))?;
        let context = human_context(&account.human_id);
        match self
            .control
            .account_command(
                &context,
                host_id,
                &account.human_id,
                &HumanCommand::IssueCode {
                    code_sealed: sealed,
                    expires_at_ms: context.now_ms.saturating_add(CODE_TTL_MS),
                },
            )
            .await
            .map_err(|e| unavailable("issue code", e))?
        {
            Ok(_) => {}
            Err(HumanRejected::AlreadyVerified) => return Ok(true),
            Err(other) => return Err(unavailable("issue code", other)),
        }
        self.config.mailer.send_later(
            account.email.clone(),
            CODE_SUBJECT,
            format!(
                "Your verification code is {}\n\n\
                 Enter it on the page where you created your account. It expires in 10 \
                 minutes. If you did not ask for it, ignore this message.",
                code.as_str()
            ),
        );
        Ok(true)
    }

    /// Mails a sign-in code (email OTP) to `account`, voiding the previous one, within the
    /// mail rate limit; only its keyed hash is stored. `Ok(false)` when the limit held it back.
    pub(crate) async fn send_sign_in_code(
        &self,
        host_id: &str,
        account: &AccountView,
    ) -> Result<bool, AccountError> {
        if !self.limits.allow_mail(host_id, &account.email) {
            return Ok(false);
        }
        let code = Zeroizing::new(format!("{:06}", rand::rng().random_range(0..1_000_000u32)));
        let code_hash = self
            .config
            .key_ring
            .mac(
                sign_in_code_purpose(host_id, &account.human_id).as_bytes(),
                code.as_bytes(),
            )
            .map_err(|e| unavailable("hash code", e))?;
        let context = human_context(&account.human_id);
        self.control
            .account_command(
                &context,
                host_id,
                &account.human_id,
                &HumanCommand::IssueSignInCode {
                    code_hash,
                    expires_at_ms: context.now_ms.saturating_add(SIGN_IN_CODE_TTL_MS),
                },
            )
            .await
            .map_err(|e| unavailable("issue sign-in code", e))?
            .map_err(|e| unavailable("issue sign-in code", e))?;
        self.config.mailer.send_later(
            account.email.clone(),
            SIGN_IN_CODE_SUBJECT,
            format!(
                "Your sign-in code is {}\n\n\
                 Enter it on the page where you asked for it. It expires in 5 minutes and \
                 works once. If you did not ask for it, ignore this message: nobody can sign \
                 in without it.",
                code.as_str()
            ),
        );
        Ok(true)
    }

    /// Checks `entered` against the human's current sign-in code and records the attempt;
    /// a match uses the code up and proves the mailbox.
    pub(crate) async fn check_sign_in_code(
        &self,
        host_id: &str,
        human_id: &str,
        entered: &str,
    ) -> Result<Result<Account, HumanRejected>, AccountError> {
        let Some(account) = self
            .control
            .account(host_id, human_id)
            .await
            .map_err(|e| unavailable("read account", e))?
        else {
            return Ok(Err(HumanRejected::NotFound));
        };
        let well_formed = entered.len() == 6 && entered.bytes().all(|b| b.is_ascii_digit());
        let matched = account.account.sign_in_code.as_ref().and_then(|code| {
            (well_formed
                && self.config.key_ring.mac_matches(
                    &code.sealed,
                    sign_in_code_purpose(host_id, human_id).as_bytes(),
                    entered.as_bytes(),
                ))
            .then(|| code.sealed.clone())
        });
        let context = human_context(human_id);
        self.control
            .account_command(
                &context,
                host_id,
                human_id,
                &HumanCommand::RedeemSignInCode {
                    matched_code_hash: matched,
                    at_ms: context.now_ms,
                },
            )
            .await
            .map_err(|e| unavailable("redeem sign-in code", e))
    }

    /// Checks `entered` against the human's current code and records the attempt.
    pub(crate) async fn check_code(
        &self,
        host_id: &str,
        human_id: &str,
        entered: &str,
    ) -> Result<Result<Account, HumanRejected>, AccountError> {
        let Some(account) = self
            .control
            .account(host_id, human_id)
            .await
            .map_err(|e| unavailable("read account", e))?
        else {
            return Ok(Err(HumanRejected::NotFound));
        };
        let matched = account.account.code.as_ref().and_then(|code| {
            let opened = open_bytes(
                &self.config.key_ring,
                &code.sealed,
                &code_aad(host_id, human_id),
            )
            .ok()?;
            let well_formed = entered.len() == 6 && entered.bytes().all(|b| b.is_ascii_digit());
            (well_formed && bool::from(opened.as_slice().ct_eq(entered.as_bytes())))
                .then(|| code.sealed.clone())
        });
        let context = human_context(human_id);
        let outcome = self
            .control
            .account_command(
                &context,
                host_id,
                human_id,
                &HumanCommand::Verify {
                    matched_code_sealed: matched,
                    at_ms: context.now_ms,
                },
            )
            .await
            .map_err(|e| unavailable("verify code", e))?;
        Ok(outcome)
    }

    /// The verified account `email` signs in to with `password`, if any; `Unverified` when
    /// the password is right but the email was never proven.
    pub(crate) async fn sign_in(
        &self,
        host_id: &str,
        email: &str,
        password: Zeroizing<String>,
    ) -> Result<SignIn, AccountError> {
        let account = self
            .control
            .account_by_email(host_id, email)
            .await
            .map_err(|e| unavailable("read account", e))?;
        let phc = account
            .as_ref()
            .and_then(|a| a.account.password_hash_sealed.as_ref().map(|s| (a, s)))
            .and_then(|(a, sealed)| {
                open_bytes(
                    &self.config.key_ring,
                    sealed,
                    &password_aad(host_id, &a.human_id),
                )
                .ok()
            })
            .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
            .map(Zeroizing::new);
        let matches = self
            .passwords
            .verify(password, phc)
            .await
            .map_err(|e| unavailable("verify password", e))?;
        Ok(match account {
            Some(account) if matches && account.account.email_verified => SignIn::Ok(account),
            Some(account) if matches => SignIn::Unverified(account),
            _ => SignIn::Wrong,
        })
    }
}

/// The outcome of a sign-in.
#[derive(Debug)]
pub(crate) enum SignIn {
    /// Signed in.
    Ok(AccountView),
    /// The password is right, the email unproven: a code is needed first.
    Unverified(AccountView),
    /// Wrong email or password (not told apart).
    Wrong,
}
