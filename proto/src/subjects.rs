//! Where each aggregate lives in the log: `evt.<host>.<aggregate_type>.<id>`.
//!
//! Owns the aggregate type tokens, the subject builders, and which aggregate type each event
//! body belongs to, so the control plane (which appends) and the projector (which reads)
//! cannot disagree about the layout.

use portcullis_store::{InvalidName, Subject};

use crate::events::v1::{Event, event::Body};

/// The host token of aggregates that belong to no host (organizations, admin tokens).
pub const NO_HOST: &str = "_";

/// Aggregate type: an organization (`evt._.organization.<org_id>`).
pub const ORGANIZATION: &str = "organization";
/// Aggregate type: an admin token (`evt._.admin_token.<token_id>`).
pub const ADMIN_TOKEN: &str = "admin_token";
/// Aggregate type: a host (`evt.<host_id>.host.<host_id>`).
pub const HOST: &str = "host";
/// Aggregate type: an imported server (`evt.<host>.server.<server_id>`).
pub const SERVER: &str = "server";
/// Aggregate type: the reservation of a server key in a host (`evt.<host>.server_key.<key>`).
pub const SERVER_KEY: &str = "server_key";
/// Aggregate type: a human (`evt.<host>.human.<human_id>`).
pub const HUMAN: &str = "human";
/// Aggregate type: the reservation of an email in a host
/// (`evt.<host>.human_email.<sha256 hex of the normalized email>`).
pub const HUMAN_EMAIL: &str = "human_email";
/// Aggregate type: the reservation of an external identity in a host
/// (`evt.<host>.human_identity.<sha256 hex of "<issuer>\n<subject>">`).
pub const HUMAN_IDENTITY: &str = "human_identity";
/// Aggregate type: a grant (`evt.<host>.grant.<human_id>-<server_id>`).
pub const GRANT: &str = "grant";
/// Aggregate type: a human's credential at an OAuth-protected upstream
/// (`evt.<host>.upstream_credential.<human_id>-<server_id>`).
pub const UPSTREAM_CREDENTIAL: &str = "upstream_credential";
/// Aggregate type: an agent (`evt.<host>.agent.<agent_id>`).
pub const AGENT: &str = "agent";
/// Aggregate type: a consent session (`evt.<host>.session.<session_id>`).
pub const SESSION: &str = "session";

/// The aggregate type an event body belongs to; `None` for an event without a body.
pub fn aggregate_type(event: &Event) -> Option<&'static str> {
    let body = event.body.as_ref()?;
    Some(match body {
        Body::OrganizationCreated(_) | Body::DefaultHostAssigned(_) => ORGANIZATION,
        Body::AdminTokenIssued(_)
        | Body::AdminTokenRevoked(_)
        | Body::AdminTokenOrganizationAdded(_) => ADMIN_TOKEN,
        Body::HostCreated(_)
        | Body::HostSettingsChanged(_)
        | Body::HostDeleted(_)
        | Body::HostSigningKeyAdded(_)
        | Body::HostSigningKeyRetired(_) => HOST,
        Body::ServerImported(_)
        | Body::ServerDetailsChanged(_)
        | Body::ToolAdded(_)
        | Body::ToolChanged(_)
        | Body::ToolRemoved(_)
        | Body::ServerDeleted(_) => SERVER,
        Body::ServerKeyClaimed(_) | Body::ServerKeyReleased(_) => SERVER_KEY,
        Body::HumanAdded(_)
        | Body::HumanRemoved(_)
        | Body::HumanPasswordSet(_)
        | Body::HumanVerificationCodeIssued(_)
        | Body::HumanVerificationFailed(_)
        | Body::HumanEmailVerified(_)
        | Body::HumanSignInCodeIssued(_)
        | Body::HumanSignInCodeFailed(_)
        | Body::HumanSignInCodeRedeemed(_)
        | Body::HumanIdentityLinked(_)
        | Body::HumanPasskeyRegistered(_)
        | Body::HumanPasskeyUsed(_) => HUMAN,
        Body::HumanIdentityClaimed(_) | Body::HumanIdentityReleased(_) => HUMAN_IDENTITY,
        Body::HumanEmailClaimed(_) | Body::HumanEmailReleased(_) => HUMAN_EMAIL,
        Body::GrantIssued(_) | Body::GrantChanged(_) | Body::GrantRevoked(_) => GRANT,
        Body::AgentRegistered(_)
        | Body::AgentCapSet(_)
        | Body::AgentCapCleared(_)
        | Body::AgentServerRevoked(_)
        | Body::AgentDeleted(_)
        | Body::AgentConnected(_) => AGENT,
        Body::SessionStarted(_) | Body::SessionRefreshed(_) | Body::SessionRevoked(_) => SESSION,
        Body::UpstreamCredentialStored(_)
        | Body::UpstreamCredentialRevoked(_)
        | Body::UpstreamCredentialRefreshClaimed(_) => UPSTREAM_CREDENTIAL,
    })
}

/// `evt._.organization.<org_id>`.
pub fn organization(org_id: &str) -> Result<Subject, InvalidName> {
    Subject::new(NO_HOST, ORGANIZATION, org_id)
}

/// `evt._.admin_token.<token_id>`.
pub fn admin_token(token_id: &str) -> Result<Subject, InvalidName> {
    Subject::new(NO_HOST, ADMIN_TOKEN, token_id)
}

/// `evt.<host_id>.host.<host_id>`.
pub fn host(host_id: &str) -> Result<Subject, InvalidName> {
    Subject::new(host_id, HOST, host_id)
}

/// `evt.<host>.server.<server_id>`.
pub fn server(host: &str, server_id: &str) -> Result<Subject, InvalidName> {
    Subject::new(host, SERVER, server_id)
}

/// `evt.<host>.server_key.<key>`.
pub fn server_key(host: &str, key: &str) -> Result<Subject, InvalidName> {
    Subject::new(host, SERVER_KEY, key)
}

/// `evt.<host>.human.<human_id>`.
pub fn human(host: &str, human_id: &str) -> Result<Subject, InvalidName> {
    Subject::new(host, HUMAN, human_id)
}

/// `evt.<host>.human_email.<email_sha256_hex>`; the caller hashes the normalized email.
pub fn human_email(host: &str, email_sha256_hex: &str) -> Result<Subject, InvalidName> {
    Subject::new(host, HUMAN_EMAIL, email_sha256_hex)
}

/// `evt.<host>.human_identity.<identity_sha256_hex>`; the caller hashes
/// `"<issuer>\n<subject>"`.
pub fn human_identity(host: &str, identity_sha256_hex: &str) -> Result<Subject, InvalidName> {
    Subject::new(host, HUMAN_IDENTITY, identity_sha256_hex)
}

/// `evt.<host>.grant.<human_id>-<server_id>`.
pub fn grant(host: &str, human_id: &str, server_id: &str) -> Result<Subject, InvalidName> {
    Subject::new(host, GRANT, &grant_id(human_id, server_id))
}

/// `evt.<host>.upstream_credential.<human_id>-<server_id>`.
pub fn upstream_credential(
    host: &str,
    human_id: &str,
    server_id: &str,
) -> Result<Subject, InvalidName> {
    Subject::new(host, UPSTREAM_CREDENTIAL, &grant_id(human_id, server_id))
}

/// `evt.<host>.agent.<agent_id>`.
pub fn agent(host: &str, agent_id: &str) -> Result<Subject, InvalidName> {
    Subject::new(host, AGENT, agent_id)
}

/// `evt.<host>.session.<session_id>`.
pub fn session(host: &str, session_id: &str) -> Result<Subject, InvalidName> {
    Subject::new(host, SESSION, session_id)
}

/// The aggregate id of a grant: `<human_id>-<server_id>` (ULIDs contain no `-`).
pub fn grant_id(human_id: &str, server_id: &str) -> String {
    format!("{human_id}-{server_id}")
}

/// Splits a grant aggregate id into `(human_id, server_id)`; `None` unless it is exactly
/// two non-empty parts around one `-`.
pub fn parse_grant_id(id: &str) -> Option<(&str, &str)> {
    let (human_id, server_id) = id.split_once('-')?;
    if human_id.is_empty() || server_id.is_empty() || server_id.contains('-') {
        return None;
    }
    Some((human_id, server_id))
}

#[cfg(test)]
mod tests;
