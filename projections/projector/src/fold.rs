//! Pure folds: given one event and the current value of one key, the new value, or no change.
//!
//! No IO, no clock, no randomness: everything comes from the event, its log sequence and the
//! current value, so replaying a log always rebuilds the same read models. Each fold is total:
//! an event that does not apply to the current state (an update of something absent or
//! deleted) changes nothing rather than failing, because history is the truth and the folds
//! only summarize it.

use bytes::Bytes;
use portcullis_proto::events::v1::{self as pb, Event, event::Body};
use portcullis_proto::{
    DEFAULT_SESSION_ABSOLUTE_SECONDS, DEFAULT_SESSION_IDLE_SECONDS, InvalidTrustLevel, TrustLevel,
};
use portcullis_store::{InvalidName, Subject};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::models::{
    AdminToken, Agent, AgentClientOwner, AuthSettings, Classification, DomainRule, Grant, Host,
    HostSettings, Human, HumanEmailOwner, Organization, ProviderKind, PublicSigningKey, Server,
    ServerKeyOwner, Session, SessionRevocation, SignInProvider, State, Tool, ToolVisibility,
    UpstreamAuth, UpstreamCredential, Versioned,
};
use crate::targets::ModelKind;

/// Why an event could not be folded. Decoded events (see `portcullis_proto::decode_event`)
/// only fail here on a subject that does not fit their body.
#[derive(Debug, thiserror::Error)]
pub enum FoldError {
    /// The event has no body.
    #[error("event has no body")]
    MissingBody,
    /// The event's body belongs to another aggregate type than its subject names.
    #[error("{event_type} does not belong on subject {subject}")]
    WrongAggregate {
        /// The body's type.
        event_type: &'static str,
        /// The subject it was stored under.
        subject: Subject,
    },
    /// A grant subject whose id is not `<human_id>-<server_id>`.
    #[error("grant subject {subject} is not evt.<host>.grant.<human_id>-<server_id>")]
    MalformedGrantId {
        /// The subject.
        subject: Subject,
    },
    /// A read-model key could not be built.
    #[error("cannot build a {kind:?} key")]
    BadKey {
        /// The model.
        kind: ModelKind,
        /// Why.
        #[source]
        source: InvalidName,
    },
    /// A trust level that is not low, medium or high.
    #[error("{event_type}: invalid {field}")]
    InvalidTrustLevel {
        /// The body's type.
        event_type: &'static str,
        /// Which field.
        field: &'static str,
        /// The bad value.
        #[source]
        source: InvalidTrustLevel,
    },
    /// A part the domain requires is missing.
    #[error("{event_type}: {what} is missing")]
    Missing {
        /// The body's type.
        event_type: &'static str,
        /// What.
        what: &'static str,
    },
    /// The stored value of a key is not a valid read model.
    #[error("stored {kind:?} value is corrupt")]
    CorruptValue {
        /// The model.
        kind: ModelKind,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// A read model could not be serialized (a bug: models are plain data).
    #[error("cannot serialize a {kind:?} value")]
    Serialize {
        /// The model.
        kind: ModelKind,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
}

/// A read model: its own fold of one event into the state of one key.
pub trait ReadModel: Serialize + DeserializeOwned + Clone + PartialEq + std::fmt::Debug {
    /// The new state after `event` (at log sequence `sequence`), or `None` for no change.
    /// Total over every event: bodies that do not concern this model return `Ok(None)`.
    fn evolve(
        current: Option<&State<Self>>,
        sequence: u64,
        event: &Event,
    ) -> Result<Option<State<Self>>, FoldError>;
}

/// Folds one event into one key's current value: `None` means write nothing.
///
/// An event at or below the value's `applied_through` is already in (at-least-once delivery,
/// a replay after a crash, or a racing projector that got there first) and changes nothing.
pub fn apply<M: ReadModel>(
    current: Option<&Versioned<M>>,
    sequence: u64,
    event: &Event,
) -> Result<Option<Versioned<M>>, FoldError> {
    if current.is_some_and(|value| value.applied_through >= sequence) {
        return Ok(None);
    }
    let next = M::evolve(current.map(|value| &value.state), sequence, event)?;
    Ok(next.map(|state| Versioned {
        applied_through: sequence,
        state,
    }))
}

/// `apply` on stored bytes, for the model `kind`: parses the current value, folds, and
/// serializes the new one. `Ok(None)` means write nothing.
pub fn apply_stored(
    kind: ModelKind,
    current: Option<&[u8]>,
    sequence: u64,
    event: &Event,
) -> Result<Option<Bytes>, FoldError> {
    fn typed<M: ReadModel>(
        kind: ModelKind,
        current: Option<&[u8]>,
        sequence: u64,
        event: &Event,
    ) -> Result<Option<Bytes>, FoldError> {
        let current = current
            .map(serde_json::from_slice::<Versioned<M>>)
            .transpose()
            .map_err(|source| FoldError::CorruptValue { kind, source })?;
        apply(current.as_ref(), sequence, event)?
            .map(|next| serde_json::to_vec(&next).map(Bytes::from))
            .transpose()
            .map_err(|source| FoldError::Serialize { kind, source })
    }
    match kind {
        ModelKind::Organization => typed::<Organization>(kind, current, sequence, event),
        ModelKind::AdminToken => typed::<AdminToken>(kind, current, sequence, event),
        ModelKind::Host => typed::<Host>(kind, current, sequence, event),
        ModelKind::Server => typed::<Server>(kind, current, sequence, event),
        ModelKind::ServerKey => typed::<ServerKeyOwner>(kind, current, sequence, event),
        ModelKind::Human => typed::<Human>(kind, current, sequence, event),
        ModelKind::HumanEmail => typed::<HumanEmailOwner>(kind, current, sequence, event),
        ModelKind::Grant => typed::<Grant>(kind, current, sequence, event),
        ModelKind::Agent => typed::<Agent>(kind, current, sequence, event),
        ModelKind::AgentClient => typed::<AgentClientOwner>(kind, current, sequence, event),
        ModelKind::Session => typed::<Session>(kind, current, sequence, event),
        ModelKind::UpstreamCredential => {
            typed::<UpstreamCredential>(kind, current, sequence, event)
        }
    }
}

/// The live model, if any.
fn live<M>(current: Option<&State<M>>) -> Option<&M> {
    match current {
        Some(State::Live(model)) => Some(model),
        _ => None,
    }
}

/// A tombstone if there is something live to delete; otherwise no change.
fn delete<M>(current: Option<&State<M>>) -> Option<State<M>> {
    live(current).map(|_| State::Deleted)
}

/// Applies `change` to a copy of the live model; no change when nothing is live.
fn update<M: Clone>(current: Option<&State<M>>, change: impl FnOnce(&mut M)) -> Option<State<M>> {
    live(current).map(|model| {
        let mut model = model.clone();
        change(&mut model);
        State::Live(model)
    })
}

fn trust(event: &Event, field: &'static str, value: i32) -> Result<TrustLevel, FoldError> {
    TrustLevel::try_from(value).map_err(|source| FoldError::InvalidTrustLevel {
        event_type: portcullis_proto::event_type(event),
        field,
        source,
    })
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0xf)]])
        .map(char::from)
        .collect()
}

impl ReadModel for Organization {
    fn evolve(
        current: Option<&State<Self>>,
        _sequence: u64,
        event: &Event,
    ) -> Result<Option<State<Self>>, FoldError> {
        Ok(match &event.body {
            Some(Body::OrganizationCreated(e)) => Some(State::Live(Organization {
                name: e.name.clone(),
                default_host_id: None,
                host_ids: Vec::new(),
            })),
            Some(Body::HostCreated(e)) => update(current, |org| {
                if !org.host_ids.contains(&e.host_id) {
                    org.host_ids.push(e.host_id.clone());
                }
            }),
            Some(Body::DefaultHostAssigned(e)) => match current {
                Some(State::Live(org)) => Some(State::Live(Organization {
                    default_host_id: Some(e.host_id.clone()),
                    ..org.clone()
                })),
                _ => None,
            },
            _ => None,
        })
    }
}

impl ReadModel for AdminToken {
    fn evolve(
        current: Option<&State<Self>>,
        _sequence: u64,
        event: &Event,
    ) -> Result<Option<State<Self>>, FoldError> {
        Ok(match &event.body {
            Some(Body::AdminTokenIssued(e)) => Some(State::Live(AdminToken {
                org_ids: e.org_ids.clone(),
                token_sha256: hex(&e.token_sha256),
                label: e.label.clone(),
            })),
            Some(Body::AdminTokenOrganizationAdded(e)) => update(current, |token| {
                if !token.org_ids.contains(&e.org_id) {
                    token.org_ids.push(e.org_id.clone());
                }
            }),
            Some(Body::AdminTokenRevoked(_)) => delete(current),
            _ => None,
        })
    }
}

fn host_settings(settings: Option<&pb::HostSettings>) -> HostSettings {
    let default = pb::HostSettings::default();
    let settings = settings.unwrap_or(&default);
    HostSettings {
        dynamic_mcps: settings.dynamic_mcps,
        tool_visibility: match settings.tool_visibility() {
            pb::ToolVisibility::All => ToolVisibility::All,
            pb::ToolVisibility::Permitted | pb::ToolVisibility::Unspecified => {
                ToolVisibility::Permitted
            }
        },
        session_idle_seconds: settings
            .session_idle_seconds
            .unwrap_or(DEFAULT_SESSION_IDLE_SECONDS),
        session_absolute_seconds: settings
            .session_absolute_seconds
            .unwrap_or(DEFAULT_SESSION_ABSOLUTE_SECONDS),
        allowed_origins: settings.allowed_origins.clone(),
        auth: auth_settings(settings.auth.as_ref()),
    }
}

fn auth_settings(auth: Option<&pb::HostAuthSettings>) -> AuthSettings {
    let Some(auth) = auth else {
        return AuthSettings::default();
    };
    let rule = |rule: Option<&pb::DomainRule>| {
        rule.map(|rule| DomainRule {
            domains: rule.domains.clone(),
            include_subdomains: rule.include_subdomains,
        })
    };
    AuthSettings {
        password: auth.password.unwrap_or(true),
        email_otp: auth.email_otp.unwrap_or(false),
        allowed_domains: rule(auth.allowed_domains.as_ref()),
        password_domains: rule(auth.password_domains.as_ref()),
        email_otp_domains: rule(auth.email_otp_domains.as_ref()),
        providers: auth
            .providers
            .iter()
            .filter_map(|provider| sign_in_provider(provider, rule(provider.domains.as_ref())))
            .collect(),
        passkeys: auth.passkeys.unwrap_or(false),
        passkey_domains: rule(auth.passkey_domains.as_ref()),
    }
}

/// The read model of a provider (no secret); `None` for a kind this build does not know,
/// which the domain never records.
fn sign_in_provider(
    provider: &pb::SignInProvider,
    domains: Option<DomainRule>,
) -> Option<SignInProvider> {
    let kind = match provider.kind() {
        pb::SignInProviderKind::Oidc => ProviderKind::Oidc,
        pb::SignInProviderKind::Google => ProviderKind::Google,
        pb::SignInProviderKind::Microsoft => ProviderKind::Microsoft,
        pb::SignInProviderKind::Github => ProviderKind::Github,
        pb::SignInProviderKind::Saml => ProviderKind::Saml,
        pb::SignInProviderKind::Unspecified => return None,
    };
    let text = |value: &str| (!value.is_empty()).then(|| value.to_owned());
    Some(SignInProvider {
        id: provider.id.clone(),
        kind,
        display_name: provider.display_name.clone(),
        client_id: provider.client_id.clone(),
        secret_key_id: provider.key_id.clone(),
        issuer: text(&provider.issuer),
        tenant: text(&provider.tenant),
        allowed_tenants: provider.allowed_tenants.clone(),
        authority: text(&provider.authority),
        authorization_endpoint: text(&provider.authorization_endpoint),
        token_endpoint: text(&provider.token_endpoint),
        api_base: text(&provider.api_base),
        domains,
        force_redirect_domains: provider.force_redirect_domains.clone(),
        saml_sso_url: text(&provider.saml_sso_url),
        saml_entity_id: text(&provider.saml_entity_id),
        saml_certificates: provider.saml_certificates.clone(),
    })
}

impl ReadModel for Host {
    fn evolve(
        current: Option<&State<Self>>,
        _sequence: u64,
        event: &Event,
    ) -> Result<Option<State<Self>>, FoldError> {
        Ok(match &event.body {
            Some(Body::HostCreated(e)) => Some(State::Live(Host {
                org_id: e.org_id.clone(),
                prefix: e.prefix.clone(),
                is_default: e.is_default,
                settings: host_settings(e.settings.as_ref()),
                signing_keys: Vec::new(),
            })),
            Some(Body::HostSettingsChanged(e)) => update(current, |host| {
                host.settings = host_settings(e.settings.as_ref());
            }),
            Some(Body::HostDeleted(_)) => delete(current),
            Some(Body::HostSigningKeyAdded(e)) => update(current, |host| {
                if !host.signing_keys.iter().any(|key| key.kid == e.kid) {
                    host.signing_keys.push(PublicSigningKey {
                        kid: e.kid.clone(),
                        algorithm: e.algorithm.clone(),
                        public_key: hex(&e.public_key),
                        added_at_ms: event.meta.as_ref().map_or(0, |meta| meta.occurred_at_ms),
                    });
                }
            }),
            Some(Body::HostSigningKeyRetired(e)) => update(current, |host| {
                host.signing_keys.retain(|key| key.kid != e.kid);
            }),
            _ => None,
        })
    }
}

fn classification(
    event: &Event,
    classification: Option<&pb::Classification>,
) -> Result<Classification, FoldError> {
    match classification.and_then(|c| c.kind.as_ref()) {
        Some(pb::classification::Kind::Auto(auto)) => Ok(Classification::Auto {
            matched_keyword: auto.matched_keyword.clone(),
            reason: auto.reason.clone(),
        }),
        Some(pb::classification::Kind::AdminOverride(_)) => Ok(Classification::AdminOverride),
        None => Err(FoldError::Missing {
            event_type: portcullis_proto::event_type(event),
            what: "tool classification",
        }),
    }
}

fn tool_model(event: &Event, tool: &pb::Tool) -> Result<(String, Tool), FoldError> {
    Ok((
        tool.name.clone(),
        Tool {
            description: tool.description.clone(),
            input_schema_sha256: hex(&tool.input_schema_sha256),
            trust_level: trust(event, "tool trust_level", tool.trust_level)?,
            enabled: tool.enabled,
            classification: classification(event, tool.classification.as_ref())?,
        },
    ))
}

fn upstream_auth(auth: Option<&pb::UpstreamAuth>) -> UpstreamAuth {
    match auth.and_then(|a| a.mode.as_ref()) {
        Some(pb::upstream_auth::Mode::Oauth(oauth)) => UpstreamAuth::Oauth {
            client_id: oauth.client_id.clone(),
            key_id: oauth.key_id.clone(),
        },
        Some(pb::upstream_auth::Mode::None(_)) | None => UpstreamAuth::None,
    }
}

impl ReadModel for Server {
    fn evolve(
        current: Option<&State<Self>>,
        _sequence: u64,
        event: &Event,
    ) -> Result<Option<State<Self>>, FoldError> {
        Ok(match &event.body {
            Some(Body::ServerImported(e)) => Some(State::Live(Server {
                key: e.key.clone(),
                url: e.url.clone(),
                name: e.name.clone(),
                description: e.description.clone(),
                upstream_auth: upstream_auth(e.upstream_auth.as_ref()),
                timeout_seconds: e.timeout_seconds,
                tools: e
                    .tools
                    .iter()
                    .map(|t| tool_model(event, t))
                    .collect::<Result<_, _>>()?,
            })),
            Some(Body::ServerDetailsChanged(e)) => update(current, |server| {
                if let Some(name) = &e.name {
                    server.name.clone_from(name);
                }
                if let Some(description) = &e.description {
                    server.description.clone_from(description);
                }
                match e.timeout {
                    Some(pb::server_details_changed::Timeout::TimeoutSeconds(seconds)) => {
                        server.timeout_seconds = Some(seconds);
                    }
                    Some(pb::server_details_changed::Timeout::ClearTimeout(_)) => {
                        server.timeout_seconds = None;
                    }
                    None => {}
                }
            }),
            Some(Body::ToolAdded(e)) => {
                let Some(added) = &e.tool else {
                    return Err(FoldError::Missing {
                        event_type: "ToolAdded",
                        what: "tool",
                    });
                };
                let (name, added) = tool_model(event, added)?;
                update(current, |server| {
                    server.tools.insert(name, added);
                })
            }
            Some(Body::ToolChanged(e)) => {
                let exists = live(current).is_some_and(|s| s.tools.contains_key(&e.name));
                if !exists {
                    return Ok(None);
                }
                let level = e
                    .trust_level
                    .map(|level| trust(event, "trust_level", level))
                    .transpose()?;
                // A new level without a stated classification is an admin's decision.
                let how = match (&level, &e.classification) {
                    (_, Some(given)) => Some(classification(event, Some(given))?),
                    (Some(_), None) => Some(Classification::AdminOverride),
                    (None, None) => None,
                };
                update(current, |server| {
                    if let Some(tool) = server.tools.get_mut(&e.name) {
                        if let Some(level) = level {
                            tool.trust_level = level;
                        }
                        if let Some(enabled) = e.enabled {
                            tool.enabled = enabled;
                        }
                        if let Some(how) = how {
                            tool.classification = how;
                        }
                    }
                })
            }
            Some(Body::ToolRemoved(e)) => {
                if !live(current).is_some_and(|s| s.tools.contains_key(&e.name)) {
                    return Ok(None);
                }
                update(current, |server| {
                    server.tools.remove(&e.name);
                })
            }
            Some(Body::ServerDeleted(_)) => delete(current),
            _ => None,
        })
    }
}

impl ReadModel for ServerKeyOwner {
    fn evolve(
        current: Option<&State<Self>>,
        _sequence: u64,
        event: &Event,
    ) -> Result<Option<State<Self>>, FoldError> {
        Ok(match &event.body {
            Some(Body::ServerKeyClaimed(e)) => Some(State::Live(ServerKeyOwner {
                server_id: e.server_id.clone(),
            })),
            Some(Body::ServerKeyReleased(_)) => delete(current),
            _ => None,
        })
    }
}

impl ReadModel for Human {
    fn evolve(
        current: Option<&State<Self>>,
        _sequence: u64,
        event: &Event,
    ) -> Result<Option<State<Self>>, FoldError> {
        Ok(match &event.body {
            Some(Body::HumanAdded(e)) => Some(State::Live(Human {
                email: e.email.clone(),
                pre_authorized: e.pre_authorized,
                email_verified: false,
            })),
            Some(
                Body::HumanEmailVerified(_)
                | Body::HumanSignInCodeRedeemed(_)
                | Body::HumanIdentityLinked(_),
            ) => update(current, |human| {
                human.email_verified = true;
            }),
            Some(Body::HumanRemoved(_)) => delete(current),
            _ => None,
        })
    }
}

impl ReadModel for HumanEmailOwner {
    fn evolve(
        current: Option<&State<Self>>,
        _sequence: u64,
        event: &Event,
    ) -> Result<Option<State<Self>>, FoldError> {
        Ok(match &event.body {
            Some(Body::HumanEmailClaimed(e)) => Some(State::Live(HumanEmailOwner {
                human_id: e.human_id.clone(),
            })),
            Some(Body::HumanEmailReleased(_)) => delete(current),
            _ => None,
        })
    }
}

impl ReadModel for Grant {
    fn evolve(
        current: Option<&State<Self>>,
        sequence: u64,
        event: &Event,
    ) -> Result<Option<State<Self>>, FoldError> {
        Ok(match &event.body {
            Some(Body::GrantIssued(e)) => Some(State::Live(Grant {
                human_id: e.human_id.clone(),
                server_id: e.server_id.clone(),
                max_trust_level: trust(event, "max_trust_level", e.max_trust_level)?,
                issued_sequence: sequence,
            })),
            Some(Body::GrantChanged(e)) => {
                let level = trust(event, "max_trust_level", e.max_trust_level)?;
                update(current, |grant| grant.max_trust_level = level)
            }
            // A removed human's grants go with them (the human's removal targets them all).
            Some(Body::GrantRevoked(_) | Body::HumanRemoved(_)) => delete(current),
            _ => None,
        })
    }
}

impl ReadModel for Agent {
    fn evolve(
        current: Option<&State<Self>>,
        sequence: u64,
        event: &Event,
    ) -> Result<Option<State<Self>>, FoldError> {
        Ok(match &event.body {
            Some(Body::AgentRegistered(e)) => Some(State::Live(Agent {
                client_id: e.client_id.clone(),
                name: e.name.clone(),
                uri: e.uri.clone(),
                agent_type: e.agent_type.clone(),
                redirect_uris: e.redirect_uris.clone(),
                human_id: e.human_id.clone(),
                caps: Default::default(),
                revoked_servers: Default::default(),
            })),
            Some(Body::AgentCapSet(e)) => {
                let level = trust(event, "max_trust_level", e.max_trust_level)?;
                update(current, |agent| {
                    agent.caps.insert(e.server_id.clone(), level);
                })
            }
            Some(Body::AgentCapCleared(e)) => update(current, |agent| {
                agent.caps.remove(&e.server_id);
            }),
            // Recorded as the revocation's sequence: sessions started before it die, and the
            // human may consent again afterwards.
            Some(Body::AgentServerRevoked(e)) => update(current, |agent| {
                agent.revoked_servers.insert(e.server_id.clone(), sequence);
            }),
            Some(Body::AgentConnected(e)) => update(current, |agent| {
                agent.human_id = Some(e.human_id.clone());
            }),
            Some(Body::AgentDeleted(_)) => delete(current),
            _ => None,
        })
    }
}

impl ReadModel for UpstreamCredential {
    fn evolve(
        current: Option<&State<Self>>,
        _sequence: u64,
        event: &Event,
    ) -> Result<Option<State<Self>>, FoldError> {
        use base64::Engine as _;
        Ok(match &event.body {
            Some(Body::UpstreamCredentialStored(e)) => Some(State::Live(UpstreamCredential {
                credential_sealed: base64::engine::general_purpose::STANDARD
                    .encode(&e.credential_sealed),
                expires_at_ms: e.expires_at_ms,
            })),
            Some(Body::UpstreamCredentialRevoked(_)) => delete(current),
            _ => None,
        })
    }
}

impl ReadModel for AgentClientOwner {
    fn evolve(
        _current: Option<&State<Self>>,
        _sequence: u64,
        event: &Event,
    ) -> Result<Option<State<Self>>, FoldError> {
        Ok(match &event.body {
            // The subject names the agent: `keys_for` routes only its registration here.
            Some(Body::AgentRegistered(e)) => Some(State::Live(AgentClientOwner {
                agent_id: e.agent_id.clone(),
            })),
            _ => None,
        })
    }
}

impl ReadModel for Session {
    fn evolve(
        current: Option<&State<Self>>,
        sequence: u64,
        event: &Event,
    ) -> Result<Option<State<Self>>, FoldError> {
        let is_open = live(current).is_some_and(|session| session.revoked.is_none());
        Ok(match &event.body {
            Some(Body::SessionStarted(e)) => Some(State::Live(Session {
                human_id: e.human_id.clone(),
                agent_id: e.agent_id.clone(),
                client_id: e.client_id.clone(),
                server_id: e.server_id.clone(),
                trust_level: trust(event, "trust_level", e.trust_level)?,
                started_at_ms: e.started_at_ms,
                last_used_ms: e.started_at_ms,
                idle_timeout_seconds: e.idle_timeout_seconds,
                absolute_timeout_seconds: e.absolute_timeout_seconds,
                started_sequence: sequence,
                revoked: None,
            })),
            // Only moves forward, and never revives a revoked session.
            Some(Body::SessionRefreshed(e)) => {
                let newer = live(current).is_some_and(|s| e.at_ms > s.last_used_ms);
                if !(is_open && newer) {
                    return Ok(None);
                }
                update(current, |session| session.last_used_ms = e.at_ms)
            }
            Some(Body::SessionRevoked(e)) => {
                if !is_open {
                    return Ok(None);
                }
                let at_ms = event.meta.as_ref().map_or(0, |meta| meta.occurred_at_ms);
                update(current, |session| {
                    session.revoked = Some(SessionRevocation {
                        reason: e.reason.clone(),
                        at_ms,
                    });
                })
            }
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests;
