//! Humans and grants: add (reserving the email first), list, get with grants and agents,
//! delete (revoking everything), put and delete grants.
//!
//! Emails are looked up only through the `human_email` reservation, keyed by the SHA-256 hex
//! of the normalized email, so an email never appears in a subject or key.

use std::collections::BTreeSet;

use portcullis_domain::EventBody;
use portcullis_domain::grant::{Grant, GrantCommand, GrantRejected};
use portcullis_domain::human::{Human, HumanCommand, HumanRejected};
use portcullis_domain::reservation::{HumanEmail, ReservationCommand, ReservationRejected};
use portcullis_domain::upstream_credential::{UpstreamCredential, UpstreamCredentialCommand};
use portcullis_domain::validate::normalize_email;
use portcullis_projector::ModelKind;
use portcullis_projector::models;
use portcullis_proto::TrustLevel;
use portcullis_proto::subjects;
use sha2::{Digest, Sha256};

use super::idempotency::{IdempotencyKey, Writes};
use super::views::{GrantView, HumanDetail, HumanView};
use super::{
    Control, ControlError, Principal, check_id, infra, load_or_unavailable, new_id, now_ms,
    on_reject, subject,
};
use crate::{Context, ExecuteError};

/// How old an email claim whose human was never added must be before another add may take
/// it over (the claiming request crashed and was never retried).
const STALE_CLAIM_MS: i64 = 10 * 60 * 1000;

/// The reservation id of a normalized email: its SHA-256, lower-case hex.
pub fn email_sha256_hex(normalized_email: &str) -> String {
    Sha256::digest(normalized_email.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Control {
    /// Pre-authorizes a human by email. An email already in use in the host is a `Conflict`.
    #[tracing::instrument(name = "control.human.add", skip_all, fields(%host_id))]
    pub async fn add_human(
        &self,
        principal: &Principal,
        context: &Context,
        idempotency_key: Option<&IdempotencyKey>,
        host_id: &str,
        email: &str,
    ) -> Result<HumanView, ControlError> {
        self.host_for(principal, host_id).await?;
        let email = normalize_email(email).map_err(|e| ControlError::invalid("email", e))?;
        let email_subject = subject(subjects::human_email(host_id, &email_sha256_hex(&email)))?;
        let mut writes = Writes::new(&principal.token_id, idempotency_key);
        let Some(human_id) = self
            .claim_email(context, &mut writes, host_id, &email_subject)
            .await?
        else {
            return Err(ControlError::conflict(
                "human",
                &email,
                "a human with this email already exists in this host",
            ));
        };
        let human_subject = subject(subjects::human(host_id, &human_id))?;
        let add = HumanCommand::Add {
            human_id: human_id.clone(),
            email,
            pre_authorized: true,
        };
        match self
            .run::<Human>(context, &mut writes, "human.add", &human_subject, &add)
            .await?
        {
            Ok(_) => {}
            Err(ExecuteError::Rejected(rejected)) => {
                // Refused outright, so the human will never exist: the email goes back.
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
        self.human_view(host_id, &human_id).await
    }

    /// Claims the email for a new human id; `None` if another human holds it. Takes over a
    /// claim whose human is gone.
    pub(super) async fn claim_email(
        &self,
        context: &Context,
        writes: &mut Writes,
        host_id: &str,
        email_subject: &portcullis_store::Subject,
    ) -> Result<Option<String>, ControlError> {
        let step = "human.claim";
        for _ in 0..2 {
            let fresh = new_id();
            let claim = ReservationCommand::Claim {
                owner: fresh.clone(),
            };
            let holder = match self
                .run::<HumanEmail>(context, writes, step, email_subject, &claim)
                .await?
            {
                Ok(done) => {
                    let mine = if done.appended {
                        fresh
                    } else {
                        let command_id = writes.command_id(step, email_subject)?;
                        match self.recorded(email_subject, &command_id).await? {
                            Some(EventBody::HumanEmailClaimed(claimed)) => claimed.human_id,
                            _ => fresh,
                        }
                    };
                    return Ok(match done.state.0.owner() {
                        Some(owner) if owner == mine => Some(mine),
                        _ => None,
                    });
                }
                Err(ExecuteError::Rejected(ReservationRejected::HeldByAnother { owner })) => owner,
                Err(other) => return Err(infra(other)),
            };
            let human_subject = subject(subjects::human(host_id, &holder))?;
            let (human, _) = load_or_unavailable::<Human>(self, &human_subject).await?;
            let abandoned = match human {
                Human::Removed => true,
                Human::Live { .. } => false,
                Human::Absent => self
                    .last_event_at_ms(email_subject)
                    .await?
                    .is_some_and(|at| now_ms().saturating_sub(at) > STALE_CLAIM_MS),
            };
            if !abandoned {
                return Ok(None);
            }
            self.release_email(context, writes, email_subject, &holder)
                .await?;
        }
        Ok(None)
    }

    pub(super) async fn release_email(
        &self,
        context: &Context,
        writes: &mut Writes,
        email_subject: &portcullis_store::Subject,
        human_id: &str,
    ) -> Result<(), ControlError> {
        let release = ReservationCommand::Release {
            owner: human_id.to_owned(),
        };
        match self
            .run::<HumanEmail>(
                context,
                writes,
                &format!("human.release.{human_id}"),
                email_subject,
                &release,
            )
            .await?
        {
            Ok(_) | Err(ExecuteError::Rejected(ReservationRejected::HeldByAnother { .. })) => {
                Ok(())
            }
            Err(other) => Err(infra(other)),
        }
    }

    async fn human_view(&self, host_id: &str, human_id: &str) -> Result<HumanView, ControlError> {
        check_id("human", human_id)?;
        let human = self
            .live::<models::Human>(ModelKind::Human, &[host_id, human_id])
            .await?
            .ok_or_else(|| ControlError::not_found("human", human_id))?;
        Ok(HumanView {
            human_id: human_id.to_owned(),
            host_id: host_id.to_owned(),
            email: human.email,
            pre_authorized: human.pre_authorized,
        })
    }

    /// The host's humans, sorted by id.
    pub async fn list_humans(
        &self,
        principal: &Principal,
        host_id: &str,
    ) -> Result<Vec<HumanView>, ControlError> {
        self.host_for(principal, host_id).await?;
        Ok(self
            .list::<models::Human>(ModelKind::Human, &[host_id])
            .await?
            .into_iter()
            .filter_map(|(rest, human)| match rest.as_slice() {
                [human_id] => Some(HumanView {
                    human_id: human_id.clone(),
                    host_id: host_id.to_owned(),
                    email: human.email,
                    pre_authorized: human.pre_authorized,
                }),
                _ => None,
            })
            .collect())
    }

    /// The human of the host with this email (looked up through its reservation).
    pub async fn find_human_by_email(
        &self,
        principal: &Principal,
        host_id: &str,
        email: &str,
    ) -> Result<HumanView, ControlError> {
        self.host_for(principal, host_id).await?;
        let email = normalize_email(email).map_err(|e| ControlError::invalid("email", e))?;
        let owner = self
            .live::<models::HumanEmailOwner>(
                ModelKind::HumanEmail,
                &[host_id, &email_sha256_hex(&email)],
            )
            .await?
            .ok_or_else(|| ControlError::not_found("human", &email))?;
        self.human_view(host_id, &owner.human_id).await
    }

    /// A human with their grants and the agents they connected.
    pub async fn get_human(
        &self,
        principal: &Principal,
        host_id: &str,
        human_id: &str,
    ) -> Result<HumanDetail, ControlError> {
        self.host_for(principal, host_id).await?;
        let human = self.human_view(host_id, human_id).await?;
        let grants = self
            .list::<models::Grant>(ModelKind::Grant, &[host_id, human_id])
            .await?
            .into_iter()
            .map(|(_, grant)| GrantView {
                human_id: grant.human_id,
                server_id: grant.server_id,
                max_trust_level: grant.max_trust_level,
            })
            .collect();
        let now = now_ms();
        let mut agent_ids = BTreeSet::new();
        for (_, session) in self
            .list::<models::Session>(ModelKind::Session, &[host_id])
            .await?
        {
            if session.human_id == human_id && session.is_live_at(now) {
                agent_ids.insert(session.agent_id);
            }
        }
        for (rest, agent) in self
            .list::<models::Agent>(ModelKind::Agent, &[host_id])
            .await?
        {
            if let [agent_id] = rest.as_slice()
                && agent.human_id.as_deref() == Some(human_id)
            {
                agent_ids.insert(agent_id.clone());
            }
        }
        Ok(HumanDetail {
            human,
            grants,
            agent_ids: agent_ids.into_iter().collect(),
        })
    }

    /// Removes a human: every grant and session of theirs is revoked and their email is
    /// released (adding the email again makes a new human).
    #[tracing::instrument(name = "control.human.delete", skip_all, fields(%host_id, %human_id))]
    pub async fn delete_human(
        &self,
        principal: &Principal,
        context: &Context,
        idempotency_key: Option<&IdempotencyKey>,
        host_id: &str,
        human_id: &str,
    ) -> Result<(), ControlError> {
        self.host_for(principal, host_id).await?;
        check_id("human", human_id)?;
        let human_subject = subject(subjects::human(host_id, human_id))?;
        let mut writes = Writes::new(&principal.token_id, idempotency_key);
        // The email, from the human's history (their read model is a tombstone on a retry).
        let email = self
            .find_in_history(&human_subject, |body| match body {
                EventBody::HumanAdded(added) => Some(added.email),
                _ => None,
            })
            .await?;
        // A human removed before (by a request that may have crashed halfway) still gets their
        // grants, sessions and email cleaned up; the answer is then `NotFound`.
        let already_removed = match self
            .run::<Human>(
                context,
                &mut writes,
                "human.remove",
                &human_subject,
                &HumanCommand::Remove,
            )
            .await?
        {
            Ok(_) => false,
            Err(ExecuteError::Rejected(_)) => {
                let (state, version) = load_or_unavailable::<Human>(self, &human_subject).await?;
                if state != Human::Removed {
                    return Err(ControlError::not_found("human", human_id));
                }
                writes.note(version.0);
                true
            }
            Err(other) => return Err(infra(other)),
        };
        // Everything recorded before the removal is in the read models once this returns.
        self.settle(&writes).await?;
        // The projector tombstoned the human's grant read models with the removal; the grant
        // aggregates are revoked too, so no later event can bring one back.
        let loaded = self.grants_of_human_in_log(host_id, human_id).await?;
        for server_id in loaded {
            let grant_subject = subject(subjects::grant(host_id, human_id, &server_id))?;
            match self
                .run::<Grant>(
                    context,
                    &mut writes,
                    "human.delete.grant",
                    &grant_subject,
                    &GrantCommand::Revoke,
                )
                .await?
            {
                Ok(_) | Err(ExecuteError::Rejected(GrantRejected::NotFound)) => {}
                Err(other) => return Err(infra(other)),
            }
        }
        self.revoke_sessions(context, &mut writes, host_id, "human removed", |s| {
            s.human_id == human_id
        })
        .await?;
        // Their tokens at OAuth-protected upstreams go too: nothing could use them any more,
        // and a secret no one needs should not be kept.
        let credentials = self
            .list::<models::UpstreamCredential>(ModelKind::UpstreamCredential, &[host_id, human_id])
            .await?;
        for (rest, _) in credentials {
            let [server_id] = rest.as_slice() else {
                continue;
            };
            let credential_subject =
                subject(subjects::upstream_credential(host_id, human_id, server_id))?;
            match self
                .run::<UpstreamCredential>(
                    context,
                    &mut writes,
                    "human.delete.upstream_credential",
                    &credential_subject,
                    &UpstreamCredentialCommand::Revoke {
                        reason: "human removed".to_owned(),
                    },
                )
                .await?
            {
                Ok(_) => {}
                Err(ExecuteError::Rejected(rejected)) => {
                    return Err(ControlError::conflict(
                        "upstream credential",
                        server_id,
                        rejected,
                    ));
                }
                Err(other) => return Err(infra(other)),
            }
        }
        if let Some(email) = email {
            let email_subject = subject(subjects::human_email(host_id, &email_sha256_hex(&email)))?;
            self.release_email(context, &mut writes, &email_subject, human_id)
                .await?;
        }
        self.settle(&writes).await?;
        if already_removed {
            return Err(ControlError::not_found("human", human_id));
        }
        Ok(())
    }

    /// Servers on which the human's grant read models exist (live or tombstoned by the
    /// removal): the grant aggregates to revoke.
    async fn grants_of_human_in_log(
        &self,
        host_id: &str,
        human_id: &str,
    ) -> Result<Vec<String>, ControlError> {
        let bucket = self.buckets.for_kind(ModelKind::Grant);
        let prefix = portcullis_projector::model_key(ModelKind::Grant, &[host_id, human_id])
            .map_err(ControlError::unavailable)?;
        let keys = self
            .kv
            .keys(bucket, Some(&prefix))
            .await
            .map_err(ControlError::unavailable)?;
        Ok(keys
            .iter()
            .filter(|key| key.is_under(&prefix))
            .filter_map(|key| {
                let rest = &key.as_str()[prefix.as_str().len() + 1..];
                (!rest.contains('.')).then(|| rest.to_owned())
            })
            .collect())
    }

    /// Issues a grant, or changes its level; the same level again changes nothing.
    #[tracing::instrument(name = "control.grant.put", skip_all, fields(%host_id, %human_id, %server_id))]
    #[allow(clippy::too_many_arguments)]
    pub async fn put_grant(
        &self,
        principal: &Principal,
        context: &Context,
        idempotency_key: Option<&IdempotencyKey>,
        host_id: &str,
        human_id: &str,
        server_id: &str,
        max_trust_level: TrustLevel,
    ) -> Result<GrantView, ControlError> {
        self.host_for(principal, host_id).await?;
        self.human_view(host_id, human_id).await?;
        self.server_in(host_id, server_id).await?;
        let grant_subject = subject(subjects::grant(host_id, human_id, server_id))?;
        let mut writes = Writes::new(&principal.token_id, idempotency_key);
        let put = GrantCommand::Put {
            human_id: human_id.to_owned(),
            server_id: server_id.to_owned(),
            max_trust_level,
        };
        on_reject(
            self.run::<Grant>(context, &mut writes, "grant.put", &grant_subject, &put)
                .await?,
            |_| ControlError::not_found("grant", &format!("{human_id}/{server_id}")),
        )?;
        self.settle(&writes).await?;
        self.get_grant(principal, host_id, human_id, server_id)
            .await
    }

    /// One grant.
    pub async fn get_grant(
        &self,
        principal: &Principal,
        host_id: &str,
        human_id: &str,
        server_id: &str,
    ) -> Result<GrantView, ControlError> {
        self.host_for(principal, host_id).await?;
        check_id("human", human_id)?;
        check_id("server", server_id)?;
        let grant = self
            .live::<models::Grant>(ModelKind::Grant, &[host_id, human_id, server_id])
            .await?
            .ok_or_else(|| ControlError::not_found("grant", &format!("{human_id}/{server_id}")))?;
        Ok(GrantView {
            human_id: grant.human_id,
            server_id: grant.server_id,
            max_trust_level: grant.max_trust_level,
        })
    }

    /// Revokes a grant.
    #[tracing::instrument(name = "control.grant.delete", skip_all, fields(%host_id, %human_id, %server_id))]
    pub async fn delete_grant(
        &self,
        principal: &Principal,
        context: &Context,
        idempotency_key: Option<&IdempotencyKey>,
        host_id: &str,
        human_id: &str,
        server_id: &str,
    ) -> Result<(), ControlError> {
        self.get_grant(principal, host_id, human_id, server_id)
            .await?;
        let grant_subject = subject(subjects::grant(host_id, human_id, server_id))?;
        let mut writes = Writes::new(&principal.token_id, idempotency_key);
        on_reject(
            self.run::<Grant>(
                context,
                &mut writes,
                "grant.revoke",
                &grant_subject,
                &GrantCommand::Revoke,
            )
            .await?,
            |_| ControlError::not_found("grant", &format!("{human_id}/{server_id}")),
        )?;
        self.settle(&writes).await
    }
}
