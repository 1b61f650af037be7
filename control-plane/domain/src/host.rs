//! The host aggregate (`evt.<host_id>.host.<host_id>`): one isolated gateway instance.
//!
//! Its subject is keyed by the host id, so creating it with expected version 0 is also what
//! makes the id unique across the deployment.

use portcullis_proto::events::v1::{
    HostCreated, HostDeleted, HostSettings, HostSettingsChanged, HostSigningKeyAdded,
    HostSigningKeyRetired,
};

use crate::validate::{InvalidSettings, normalize_host_settings};
use crate::{Aggregate, Decision, EventBody};

/// A host's state.
// One value per command, folded and dropped at once: boxing `Live` would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Host {
    /// Never created.
    #[default]
    Absent,
    /// Serving.
    Live {
        /// Owning organization.
        org_id: String,
        /// Whether it is its organization's default host.
        is_default: bool,
        /// Its settings.
        settings: HostSettings,
        /// Its token-signing keys in use, oldest first; the newest signs.
        signing_keys: Vec<HostSigningKeyAdded>,
        /// The ids of keys retired: never used again, nor re-added.
        retired_kids: Vec<String>,
    },
    /// Deleted; its id is never reused.
    Deleted,
}

/// What can be done to a host.
#[derive(Clone, Debug, PartialEq)]
pub enum HostCommand {
    /// Creates it.
    Create {
        /// The host id (see `host_id::generate`).
        host_id: String,
        /// Owning organization.
        org_id: String,
        /// The prefix the id was drawn from.
        prefix: String,
        /// Whether it is the organization's default host.
        is_default: bool,
        /// Initial settings (validated and normalized).
        settings: HostSettings,
    },
    /// Replaces its settings (validated and normalized); the same settings change nothing.
    ChangeSettings {
        /// The new settings.
        settings: HostSettings,
    },
    /// Changes some settings and keeps the rest (validated and normalized as a whole).
    PatchSettings(SettingsPatch),
    /// Deletes it; its id is never reused.
    Delete,
    /// Adds a token-signing key (generated and sealed by the caller); adding a key id that is
    /// already there changes nothing.
    AddSigningKey(HostSigningKeyAdded),
    /// Takes a key out of use. Retiring a key already retired changes nothing; the newest
    /// key, which signs, cannot be retired.
    RetireSigningKey {
        /// The key's id.
        kid: String,
    },
}

/// Settings to change; `None` keeps the current value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SettingsPatch {
    /// Whether agents may add MCP servers dynamically.
    pub dynamic_mcps: Option<bool>,
    /// Which tools `tools/list` shows (a `ToolVisibility` number).
    pub tool_visibility: Option<i32>,
    /// Session idle lifetime, seconds.
    pub session_idle_seconds: Option<u64>,
    /// Session absolute lifetime, seconds.
    pub session_absolute_seconds: Option<u64>,
    /// Browser origins allowed to call the MCP endpoint (replaces the list).
    pub allowed_origins: Option<Vec<String>>,
    /// Sign-in methods and domain rules (replaces them all).
    pub auth: Option<portcullis_proto::events::v1::HostAuthSettings>,
}

impl SettingsPatch {
    /// `current` with this patch applied (not yet validated).
    pub fn apply_to(&self, current: &HostSettings) -> HostSettings {
        let mut settings = current.clone();
        if let Some(dynamic_mcps) = self.dynamic_mcps {
            settings.dynamic_mcps = dynamic_mcps;
        }
        if let Some(visibility) = self.tool_visibility {
            settings.tool_visibility = visibility;
        }
        if let Some(idle) = self.session_idle_seconds {
            settings.session_idle_seconds = Some(idle);
        }
        if let Some(absolute) = self.session_absolute_seconds {
            settings.session_absolute_seconds = Some(absolute);
        }
        if let Some(origins) = &self.allowed_origins {
            settings.allowed_origins.clone_from(origins);
        }
        if let Some(auth) = &self.auth {
            let mut auth = auth.clone();
            keep_sealed_secrets(&mut auth, settings.auth.as_ref());
            settings.auth = Some(auth);
        }
        settings
    }
}

/// A provider given without a sealed secret keeps the one of the current provider with the
/// same id and kind, so admins need not send secrets again to change other settings.
fn keep_sealed_secrets(
    auth: &mut portcullis_proto::events::v1::HostAuthSettings,
    current: Option<&portcullis_proto::events::v1::HostAuthSettings>,
) {
    let Some(current) = current else {
        return;
    };
    for provider in &mut auth.providers {
        if !provider.sealed_client_secret.is_empty() {
            continue;
        }
        if let Some(old) = current
            .providers
            .iter()
            .find(|old| old.id == provider.id && old.kind == provider.kind)
        {
            provider
                .sealed_client_secret
                .clone_from(&old.sealed_client_secret);
            provider.key_id.clone_from(&old.key_id);
        }
    }
}

/// Why a host command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostRejected {
    /// The id is taken (now or in the past).
    #[error("host id is already taken")]
    AlreadyExists,
    /// It does not exist (never created, or deleted).
    #[error("host not found")]
    NotFound,
    /// The settings break a rule.
    #[error("invalid host settings: {0}")]
    InvalidSettings(#[from] InvalidSettings),
    /// A signing key is malformed.
    #[error("invalid signing key: {0}")]
    InvalidSigningKey(&'static str),
    /// The host has no signing key with this id.
    #[error("the host has no signing key {0:?}")]
    NoSuchSigningKey(String),
    /// The key is the newest one, which signs every new token.
    #[error("the signing key {0:?} is the one in use; rotate to a new key before retiring it")]
    SigningKeyInUse(String),
}

impl Aggregate for Host {
    type Command = HostCommand;
    type Rejection = HostRejected;

    fn evolve(self, event: &EventBody) -> Self {
        match (self, event) {
            (Host::Absent, EventBody::HostCreated(e)) => Host::Live {
                org_id: e.org_id.clone(),
                is_default: e.is_default,
                settings: e.settings.clone().unwrap_or_default(),
                signing_keys: Vec::new(),
                retired_kids: Vec::new(),
            },
            (mut live @ Host::Live { .. }, EventBody::HostSettingsChanged(e)) => {
                if let Host::Live { settings, .. } = &mut live {
                    *settings = e.settings.clone().unwrap_or_default();
                }
                live
            }
            (mut live @ Host::Live { .. }, EventBody::HostSigningKeyAdded(e)) => {
                if let Host::Live {
                    signing_keys,
                    retired_kids,
                    ..
                } = &mut live
                {
                    let known = signing_keys.iter().any(|key| key.kid == e.kid)
                        || retired_kids.contains(&e.kid);
                    if !known {
                        signing_keys.push(e.clone());
                    }
                }
                live
            }
            (mut live @ Host::Live { .. }, EventBody::HostSigningKeyRetired(e)) => {
                if let Host::Live {
                    signing_keys,
                    retired_kids,
                    ..
                } = &mut live
                {
                    signing_keys.retain(|key| key.kid != e.kid);
                    if !retired_kids.contains(&e.kid) {
                        retired_kids.push(e.kid.clone());
                    }
                }
                live
            }
            (Host::Live { .. }, EventBody::HostDeleted(_)) => Host::Deleted,
            (state, _) => state,
        }
    }

    fn decide(&self, command: &HostCommand) -> Result<Decision<EventBody>, HostRejected> {
        match (self, command) {
            (
                Host::Absent,
                HostCommand::Create {
                    host_id,
                    org_id,
                    prefix,
                    is_default,
                    settings,
                },
            ) => Ok(Decision::Append(EventBody::HostCreated(HostCreated {
                host_id: host_id.clone(),
                org_id: org_id.clone(),
                prefix: prefix.clone(),
                is_default: *is_default,
                settings: Some(normalize_host_settings(settings)?),
            }))),
            (Host::Live { .. } | Host::Deleted, HostCommand::Create { .. }) => {
                Err(HostRejected::AlreadyExists)
            }
            (
                Host::Live {
                    settings: current, ..
                },
                HostCommand::ChangeSettings { settings },
            ) => change_settings(current, settings),
            (
                Host::Live {
                    settings: current, ..
                },
                HostCommand::PatchSettings(patch),
            ) => change_settings(current, &patch.apply_to(current)),
            (Host::Live { .. }, HostCommand::Delete) => {
                Ok(Decision::Append(EventBody::HostDeleted(HostDeleted {})))
            }
            (
                Host::Live {
                    signing_keys,
                    retired_kids,
                    ..
                },
                HostCommand::AddSigningKey(key),
            ) => {
                check_signing_key(key)?;
                if retired_kids.contains(&key.kid) {
                    return Err(HostRejected::InvalidSigningKey(
                        "the key id belongs to a retired key",
                    ));
                }
                if signing_keys.iter().any(|existing| existing.kid == key.kid) {
                    Ok(Decision::Unchanged)
                } else {
                    Ok(Decision::Append(EventBody::HostSigningKeyAdded(
                        key.clone(),
                    )))
                }
            }
            (
                Host::Live {
                    signing_keys,
                    retired_kids,
                    ..
                },
                HostCommand::RetireSigningKey { kid },
            ) => {
                if retired_kids.contains(kid) {
                    return Ok(Decision::Unchanged);
                }
                match signing_keys.iter().position(|key| &key.kid == kid) {
                    None => Err(HostRejected::NoSuchSigningKey(kid.clone())),
                    Some(at) if at + 1 == signing_keys.len() => {
                        Err(HostRejected::SigningKeyInUse(kid.clone()))
                    }
                    Some(_) => Ok(Decision::Append(EventBody::HostSigningKeyRetired(
                        HostSigningKeyRetired { kid: kid.clone() },
                    ))),
                }
            }
            (
                Host::Absent | Host::Deleted,
                HostCommand::ChangeSettings { .. }
                | HostCommand::PatchSettings(_)
                | HostCommand::Delete
                | HostCommand::AddSigningKey(_)
                | HostCommand::RetireSigningKey { .. },
            ) => Err(HostRejected::NotFound),
        }
    }
}

/// ES256 keys only: a 65-byte uncompressed P-256 point, a sealed private key, a key id.
fn check_signing_key(key: &HostSigningKeyAdded) -> Result<(), HostRejected> {
    if key.algorithm != "ES256" {
        return Err(HostRejected::InvalidSigningKey(
            "the algorithm must be ES256",
        ));
    }
    if key.public_key.len() != 65 || key.public_key.first() != Some(&0x04) {
        return Err(HostRejected::InvalidSigningKey(
            "the public key must be an uncompressed P-256 point",
        ));
    }
    let kid_ok = !key.kid.is_empty()
        && key.kid.len() <= 64
        && key
            .kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !kid_ok {
        return Err(HostRejected::InvalidSigningKey(
            "the key id must be 1-64 characters of [A-Za-z0-9_-]",
        ));
    }
    if key.sealed_private_key.is_empty() || key.key_id.is_empty() {
        return Err(HostRejected::InvalidSigningKey(
            "the private key must be sealed under a named master key",
        ));
    }
    Ok(())
}

fn change_settings(
    current: &HostSettings,
    wanted: &HostSettings,
) -> Result<Decision<EventBody>, HostRejected> {
    let settings = normalize_host_settings(wanted)?;
    // Compared normalized: settings stored before a field existed (e.g. `auth`) equal their
    // explicit defaults.
    if normalize_host_settings(current).is_ok_and(|current| current == settings) {
        Ok(Decision::Unchanged)
    } else {
        Ok(Decision::Append(EventBody::HostSettingsChanged(
            HostSettingsChanged {
                settings: Some(settings),
            },
        )))
    }
}

#[cfg(test)]
mod tests;
