//! The consent flow's human accounts: sign-up (a human for the email, a password), email
//! verification codes, and reading an account to sign in.
//!
//! No admin principal: the HTTP layer resolved the host from the `Host` header, and every
//! read and write stays under it. Secrets arrive sealed (the caller holds the key ring and
//! hashes passwords off the async threads); this layer only records them as events on the
//! human aggregate, which decides (see `portcullis_domain::human`).

use portcullis_domain::human::{Account, Human, HumanCommand, HumanRejected};
use portcullis_domain::validate::normalize_email;
use portcullis_projector::ModelKind;
use portcullis_projector::models;
use portcullis_proto::subjects;

use super::humans::email_sha256_hex;
use super::idempotency::Writes;
use super::{Control, ControlError, check_id, infra, load_or_unavailable, subject};
use crate::{Context, ExecuteError};

/// The actor name in command ids of the consent flow's writes.
pub(super) const CONSENT_WRITER: &str = "consent";

/// A human's account, read from the human's own events (so a just-written password or code
/// is seen at once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountView {
    /// The human.
    pub human_id: String,
    /// Their normalized email.
    pub email: String,
    /// Whether an admin added them (pre-authorized).
    pub pre_authorized: bool,
    /// Password, verification and code state.
    pub account: Account,
}

impl Control {
    /// The account with `email` in the host, if a human holds that email. An email that is
    /// not one is `None` (the sign-in page answers the same either way).
    pub async fn account_by_email(
        &self,
        host_id: &str,
        email: &str,
    ) -> Result<Option<AccountView>, ControlError> {
        check_id("host", host_id)?;
        let Ok(email) = normalize_email(email) else {
            return Ok(None);
        };
        let Some(owner) = self
            .live::<models::HumanEmailOwner>(
                ModelKind::HumanEmail,
                &[host_id, &email_sha256_hex(&email)],
            )
            .await?
        else {
            return Ok(None);
        };
        Ok(self
            .account(host_id, &owner.human_id)
            .await?
            .filter(|account| account.email == email))
    }

    /// The account of `human_id`, if the human is live.
    pub async fn account(
        &self,
        host_id: &str,
        human_id: &str,
    ) -> Result<Option<AccountView>, ControlError> {
        check_id("host", host_id)?;
        if check_id("human", human_id).is_err() {
            return Ok(None);
        }
        let human_subject = subject(subjects::human(host_id, human_id))?;
        let (human, _) = load_or_unavailable::<Human>(self, &human_subject).await?;
        Ok(match human {
            Human::Live {
                email,
                pre_authorized,
                account,
            } => Some(AccountView {
                human_id: human_id.to_owned(),
                email,
                pre_authorized,
                account,
            }),
            Human::Absent | Human::Removed => None,
        })
    }

    /// The human a sign-up with `email` is for: the one holding the email (an admin's
    /// pre-authorization, or an earlier sign-up), else a new, not pre-authorized human.
    /// `Invalid` for an email that is not one.
    #[tracing::instrument(name = "control.account.sign_up_human", skip_all, fields(%host_id))]
    pub async fn sign_up_human(
        &self,
        context: &Context,
        host_id: &str,
        email: &str,
    ) -> Result<AccountView, ControlError> {
        self.oauth_host(host_id).await?;
        let email = normalize_email(email).map_err(|e| ControlError::invalid("email", e))?;
        if let Some(existing) = self.account_by_email(host_id, &email).await? {
            return Ok(existing);
        }
        let email_subject = subject(subjects::human_email(host_id, &email_sha256_hex(&email)))?;
        let mut writes = Writes::new(CONSENT_WRITER, None);
        let Some(human_id) = self
            .claim_email(context, &mut writes, host_id, &email_subject)
            .await?
        else {
            // Claimed concurrently by another sign-up or an admin: theirs, once projected.
            self.settle(&writes).await?;
            return self
                .account_by_email(host_id, &email)
                .await?
                .ok_or_else(|| {
                    ControlError::conflict("human", &email, "the email is being claimed; retry")
                });
        };
        let human_subject = subject(subjects::human(host_id, &human_id))?;
        let add = HumanCommand::Add {
            human_id: human_id.clone(),
            email: email.clone(),
            pre_authorized: false,
        };
        match self
            .run::<Human>(context, &mut writes, "account.add", &human_subject, &add)
            .await?
        {
            Ok(_) => {}
            Err(ExecuteError::Rejected(rejected)) => {
                self.release_email(context, &mut writes, &email_subject, &human_id)
                    .await?;
                return Err(match rejected {
                    HumanRejected::InvalidEmail(e) => ControlError::invalid("email", e),
                    other => ControlError::conflict("human", &human_id, other),
                });
            }
            Err(other) => return Err(infra(other)),
        }
        self.settle(&writes).await?;
        self.account(host_id, &human_id)
            .await?
            .ok_or_else(|| ControlError::not_found("human", &human_id))
    }

    /// Records a human's account command; the inner error is the aggregate's refusal.
    #[tracing::instrument(name = "control.account.command", skip_all, fields(%host_id, %human_id))]
    pub async fn account_command(
        &self,
        context: &Context,
        host_id: &str,
        human_id: &str,
        command: &HumanCommand,
    ) -> Result<Result<Account, HumanRejected>, ControlError> {
        check_id("host", host_id)?;
        if check_id("human", human_id).is_err() {
            return Ok(Err(HumanRejected::NotFound));
        }
        if matches!(command, HumanCommand::Add { .. } | HumanCommand::Remove) {
            return Err(ControlError::invalid(
                "command",
                "adding and removing humans is an admin operation",
            ));
        }
        let human_subject = subject(subjects::human(host_id, human_id))?;
        let mut writes = Writes::new(CONSENT_WRITER, None);
        match self
            .run::<Human>(context, &mut writes, "account", &human_subject, command)
            .await?
        {
            Ok(done) => {
                self.settle(&writes).await?;
                Ok(match done.state {
                    Human::Live { account, .. } => Ok(account),
                    Human::Absent | Human::Removed => Err(HumanRejected::NotFound),
                })
            }
            Err(ExecuteError::Rejected(rejected)) => Ok(Err(rejected)),
            Err(other) => Err(infra(other)),
        }
    }
}
