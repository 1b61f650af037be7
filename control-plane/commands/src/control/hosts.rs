//! Hosts: create (with a fresh `prefix-word-word-NNNN` id), list, get, change settings,
//! delete.

use portcullis_domain::host::{Host, HostCommand, HostRejected, SettingsPatch};
use portcullis_domain::host_id;
use portcullis_domain::validate::normalize_host_settings;
use portcullis_projector::ModelKind;
use portcullis_projector::models::{self, ToolVisibility};
use portcullis_proto::events::v1 as pb;
use portcullis_proto::subjects;
use rand::SeedableRng;

use super::idempotency::{IdempotencyKey, Writes};
use super::views::HostView;
use super::{Control, ControlError, Principal, check_id, infra, subject};
use crate::{Context, ExecuteError};

/// How many host ids are drawn before giving up (each collision draws again).
const MAX_HOST_ID_ATTEMPTS: u32 = 16;

/// A host to create.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CreateHost {
    /// The owning organization; required when the admin belongs to several.
    pub org_id: Option<String>,
    /// The subdomain prefix.
    pub prefix: String,
    /// Initial settings; defaults when `None`.
    pub settings: Option<pb::HostSettings>,
}

fn host_rejected(host_id: &str, rejected: HostRejected) -> ControlError {
    match rejected {
        HostRejected::InvalidSettings(e) => ControlError::invalid(e.field(), e),
        HostRejected::NotFound => ControlError::not_found("host", host_id),
        HostRejected::AlreadyExists => ControlError::conflict("host", host_id, rejected),
        HostRejected::NoSuchSigningKey(kid) => ControlError::not_found("signing key", &kid),
        HostRejected::InvalidSigningKey(_) | HostRejected::SigningKeyInUse(_) => {
            ControlError::unavailable(rejected)
        }
    }
}

impl Control {
    /// Creates a host in one of the admin's organizations.
    ///
    /// Host ids are drawn from a generator seeded by the idempotency key, so a retried
    /// request tries the same ids in the same order and finds the host its first attempt
    /// created; a collision with another host draws the next id.
    #[tracing::instrument(name = "control.host.create", skip_all)]
    pub async fn create_host(
        &self,
        principal: &Principal,
        context: &Context,
        idempotency_key: Option<&IdempotencyKey>,
        request: CreateHost,
    ) -> Result<HostView, ControlError> {
        let org_id = match (&request.org_id, principal.org_ids.as_slice()) {
            (Some(org_id), _) => org_id.clone(),
            (None, [only]) => only.clone(),
            (None, []) => {
                return Err(ControlError::invalid(
                    "org_id",
                    "the admin belongs to no organization; create one first",
                ));
            }
            (None, _) => {
                return Err(ControlError::invalid(
                    "org_id",
                    "required when the admin belongs to several organizations",
                ));
            }
        };
        check_id("organization", &org_id)?;
        let org_exists = self
            .live::<models::Organization>(ModelKind::Organization, &[&org_id])
            .await?
            .is_some();
        if !principal.acts_for(&org_id) || !org_exists {
            return Err(ControlError::not_found("organization", &org_id));
        }
        host_id::validate_prefix(&request.prefix)
            .map_err(|e| ControlError::invalid("prefix", e))?;
        let requested = request.settings.unwrap_or_default();
        // Checked once before any id is drawn, with stand-in sealed secrets, so a bad request
        // fails without writing; each attempt seals the secrets for its own host id.
        normalize_host_settings(&stand_in_secrets(&requested))
            .map_err(|e| ControlError::invalid(e.field(), &e))?;

        let mut writes = Writes::new(&principal.token_id, idempotency_key);
        for attempt in 0..MAX_HOST_ID_ATTEMPTS {
            let seed = writes.seed(&["host", &org_id, &request.prefix, &attempt.to_string()]);
            let mut rng = rand::rngs::StdRng::from_seed(seed);
            let host_id = host_id::generate(&request.prefix, &mut rng)
                .map_err(|e| ControlError::invalid("prefix", e))?;
            let host_subject = subject(subjects::host(&host_id))?;
            let mut settings = requested.clone();
            if let Some(auth) = &mut settings.auth {
                self.seal_provider_secrets(&host_id, auth)?;
            }
            let settings = normalize_host_settings(&settings)
                .map_err(|e| ControlError::invalid(e.field(), &e))?;
            let create = HostCommand::Create {
                host_id: host_id.clone(),
                org_id: org_id.clone(),
                prefix: request.prefix.clone(),
                is_default: false,
                settings: settings.clone(),
            };
            match self
                .run::<Host>(context, &mut writes, "host.create", &host_subject, &create)
                .await?
            {
                Ok(_) => {
                    self.settle(&writes).await?;
                    if let Err(error) = self.ensure_signing_key(context, &host_id).await {
                        tracing::warn!(%host_id, %error, "The host has no token-signing key yet; its MCP endpoint refuses every token until it has one.");
                    }
                    return self.get_host(principal, &host_id).await;
                }
                Err(ExecuteError::Rejected(HostRejected::AlreadyExists)) => {
                    tracing::debug!(%host_id, "Host id taken; drawing another.");
                }
                Err(ExecuteError::Rejected(rejected)) => {
                    return Err(host_rejected(&host_id, rejected));
                }
                Err(other) => return Err(infra(other)),
            }
        }
        Err(ControlError::conflict(
            "host",
            &request.prefix,
            format!("no free host id after {MAX_HOST_ID_ATTEMPTS} attempts; try another prefix"),
        ))
    }

    /// The admin's hosts, of one organization or of all of theirs, sorted by id.
    pub async fn list_hosts(
        &self,
        principal: &Principal,
        org_id: Option<&str>,
    ) -> Result<Vec<HostView>, ControlError> {
        let org_ids: Vec<&String> = match org_id {
            Some(wanted) => {
                if !principal.acts_for(wanted) {
                    return Err(ControlError::not_found("organization", wanted));
                }
                principal.org_ids.iter().filter(|o| *o == wanted).collect()
            }
            None => principal.org_ids.iter().collect(),
        };
        let mut hosts = Vec::new();
        for org_id in org_ids {
            let Some(org) = self
                .live::<models::Organization>(ModelKind::Organization, &[org_id])
                .await?
            else {
                continue;
            };
            for host_id in &org.host_ids {
                if check_id("host", host_id).is_err() {
                    continue;
                }
                if let Some(host) = self
                    .live::<models::Host>(ModelKind::Host, &[host_id])
                    .await?
                {
                    // The organization's list and the host must agree on the owner.
                    if &host.org_id == org_id {
                        hosts.push(HostView::new(host_id, host));
                    }
                }
            }
        }
        hosts.sort_by(|a, b| a.host_id.cmp(&b.host_id));
        Ok(hosts)
    }

    /// One host of the admin's.
    pub async fn get_host(
        &self,
        principal: &Principal,
        host_id: &str,
    ) -> Result<HostView, ControlError> {
        let host = self.host_for(principal, host_id).await?;
        Ok(HostView::new(host_id, host))
    }

    /// Changes the named settings of a host and keeps the others.
    #[tracing::instrument(name = "control.host.update_settings", skip_all, fields(%host_id))]
    pub async fn update_host_settings(
        &self,
        principal: &Principal,
        context: &Context,
        idempotency_key: Option<&IdempotencyKey>,
        host_id: &str,
        patch: HostSettingsPatch,
    ) -> Result<HostView, ControlError> {
        self.host_for(principal, host_id).await?;
        let mut patch = patch;
        if let Some(auth) = &mut patch.auth {
            self.seal_provider_secrets(host_id, auth)?;
        }
        let mut writes = Writes::new(&principal.token_id, idempotency_key);
        let host_subject = subject(subjects::host(host_id))?;
        let command = HostCommand::PatchSettings(patch.into_domain());
        match self
            .run::<Host>(
                context,
                &mut writes,
                "host.settings",
                &host_subject,
                &command,
            )
            .await?
        {
            Ok(_) => {}
            Err(ExecuteError::Rejected(rejected)) => return Err(host_rejected(host_id, rejected)),
            Err(other) => return Err(infra(other)),
        }
        self.settle(&writes).await?;
        self.get_host(principal, host_id).await
    }

    /// Deletes a host; everything in it becomes unreachable.
    #[tracing::instrument(name = "control.host.delete", skip_all, fields(%host_id))]
    pub async fn delete_host(
        &self,
        principal: &Principal,
        context: &Context,
        idempotency_key: Option<&IdempotencyKey>,
        host_id: &str,
    ) -> Result<(), ControlError> {
        self.host_for(principal, host_id).await?;
        let mut writes = Writes::new(&principal.token_id, idempotency_key);
        let host_subject = subject(subjects::host(host_id))?;
        match self
            .run::<Host>(
                context,
                &mut writes,
                "host.delete",
                &host_subject,
                &HostCommand::Delete,
            )
            .await?
        {
            Ok(_) => {}
            Err(ExecuteError::Rejected(rejected)) => return Err(host_rejected(host_id, rejected)),
            Err(other) => return Err(infra(other)),
        }
        self.settle(&writes).await
    }
}

/// `settings` with every provider's plain-text secret replaced by a stand-in sealed value, for
/// checking everything else before anything is sealed.
fn stand_in_secrets(settings: &pb::HostSettings) -> pb::HostSettings {
    let mut settings = settings.clone();
    if let Some(auth) = &mut settings.auth {
        for provider in &mut auth.providers {
            if !provider.client_secret.is_empty() {
                provider.client_secret.clear();
                provider.sealed_client_secret = vec![0];
                provider.key_id = "stand-in".to_owned();
            } else {
                provider.sealed_client_secret.clear();
                provider.key_id.clear();
            }
        }
    }
    settings
}

/// Host settings to change; `None` keeps the current value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostSettingsPatch {
    /// Whether agents may add MCP servers dynamically.
    pub dynamic_mcps: Option<bool>,
    /// Which tools `tools/list` shows.
    pub tool_visibility: Option<ToolVisibility>,
    /// Session idle lifetime, seconds (1 minute to 365 days; at most the absolute one).
    pub session_idle_seconds: Option<u64>,
    /// Session absolute lifetime, seconds (1 minute to 365 days).
    pub session_absolute_seconds: Option<u64>,
    /// Browser origins allowed to call the MCP endpoint (replaces the list).
    pub allowed_origins: Option<Vec<String>>,
    /// Sign-in methods and email-domain rules (replaces them all; absent fields inside take
    /// their defaults).
    pub auth: Option<pb::HostAuthSettings>,
}

impl HostSettingsPatch {
    fn into_domain(self) -> SettingsPatch {
        SettingsPatch {
            dynamic_mcps: self.dynamic_mcps,
            tool_visibility: self.tool_visibility.map(|v| match v {
                ToolVisibility::Permitted => pb::ToolVisibility::Permitted as i32,
                ToolVisibility::All => pb::ToolVisibility::All as i32,
            }),
            session_idle_seconds: self.session_idle_seconds,
            session_absolute_seconds: self.session_absolute_seconds,
            allowed_origins: self.allowed_origins,
            auth: self.auth,
        }
    }
}
