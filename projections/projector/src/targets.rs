//! Which read-model keys an event touches: the routing half of the folds, pure and total.

use portcullis_proto::events::v1::{Event, event::Body};
use portcullis_proto::subjects;
use portcullis_store::{Key, Subject};

use crate::FoldError;

/// The read models, one per kind of key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ModelKind {
    /// `org.<org_id>` in `organizations`.
    Organization,
    /// `admin_token.<token_id>` in `organizations`.
    AdminToken,
    /// `host.<host_id>` in `hosts`.
    Host,
    /// `server.<host>.<server_id>` in `servers`.
    Server,
    /// `server_key.<host>.<key>` in `servers`.
    ServerKey,
    /// `human.<host>.<human_id>` in `humans`.
    Human,
    /// `human_email.<host>.<email_sha256_hex>` in `humans`.
    HumanEmail,
    /// `grant.<host>.<human_id>.<server_id>` in `grants`.
    Grant,
    /// `agent.<host>.<agent_id>` in `agents`.
    Agent,
    /// `agent_client.<host>.<client_id_sha256_hex>` in `agents`: which agent holds an
    /// OAuth client id (client ids may be URLs, so the key is their hash).
    AgentClient,
    /// `session.<host>.<session_id>` in `sessions`.
    Session,
    /// `upstream_credential.<host>.<human_id>.<server_id>` in `grants` (beside the grant it
    /// goes with, so data planes already watch it).
    UpstreamCredential,
}

impl ModelKind {
    /// The base name of the bucket holding this kind (see `Buckets` for suffixed names).
    pub fn bucket_base(self) -> &'static str {
        match self {
            ModelKind::Organization | ModelKind::AdminToken => ORGANIZATIONS,
            ModelKind::Host => HOSTS,
            ModelKind::Server | ModelKind::ServerKey => SERVERS,
            ModelKind::Human | ModelKind::HumanEmail => HUMANS,
            ModelKind::Grant | ModelKind::UpstreamCredential => GRANTS,
            ModelKind::Agent | ModelKind::AgentClient => AGENTS,
            ModelKind::Session => SESSIONS,
        }
    }

    /// The first token of this kind's keys.
    pub fn key_prefix(self) -> &'static str {
        match self {
            ModelKind::Organization => "org",
            ModelKind::AdminToken => "admin_token",
            ModelKind::Host => "host",
            ModelKind::Server => "server",
            ModelKind::ServerKey => "server_key",
            ModelKind::Human => "human",
            ModelKind::HumanEmail => "human_email",
            ModelKind::Grant => "grant",
            ModelKind::Agent => "agent",
            ModelKind::AgentClient => "agent_client",
            ModelKind::Session => "session",
            ModelKind::UpstreamCredential => "upstream_credential",
        }
    }
}

/// Bucket of organizations and admin tokens.
pub const ORGANIZATIONS: &str = "organizations";
/// Bucket of hosts.
pub const HOSTS: &str = "hosts";
/// Bucket of server catalogs and server key reservations.
pub const SERVERS: &str = "servers";
/// Bucket of humans and email reservations.
pub const HUMANS: &str = "humans";
/// Bucket of grants.
pub const GRANTS: &str = "grants";
/// Bucket of agents.
pub const AGENTS: &str = "agents";
/// Bucket of sessions.
pub const SESSIONS: &str = "sessions";
/// Every read-model bucket base name.
pub const READ_MODEL_BUCKETS: [&str; 7] = [
    ORGANIZATIONS,
    HOSTS,
    SERVERS,
    HUMANS,
    GRANTS,
    AGENTS,
    SESSIONS,
];

/// Which keys of a kind an event touches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Exactly this key (which may not exist yet).
    Key(Key),
    /// Every key that exists under this prefix (token boundary) when the event is applied.
    Prefix(Key),
}

/// One key (or key prefix) an event touches, and the model stored there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyTarget {
    /// The model, hence the bucket and the fold.
    pub kind: ModelKind,
    /// The key or prefix.
    pub target: Target,
}

/// The key of a model: `<kind prefix>.<tokens…>`.
pub fn model_key(kind: ModelKind, tokens: &[&str]) -> Result<Key, FoldError> {
    let whole = std::iter::once(kind.key_prefix()).chain(tokens.iter().copied());
    Key::join(whole).map_err(|source| FoldError::BadKey { kind, source })
}

/// The keys an event of `subject` touches. Ids come from the subject (bodies of later events
/// do not repeat them); the body only decides the kind and the extra prefix targets.
pub fn keys_for(event: &Event, subject: &Subject) -> Result<Vec<KeyTarget>, FoldError> {
    let Some(body) = &event.body else {
        return Err(FoldError::MissingBody);
    };
    let expected = subjects::aggregate_type(event).unwrap_or_default();
    if subject.aggregate_type() != expected {
        return Err(FoldError::WrongAggregate {
            event_type: portcullis_proto::event_type(event),
            subject: subject.clone(),
        });
    }
    let host = subject.host();
    let id = subject.aggregate_id();
    let key = |kind, tokens: &[&str]| {
        model_key(kind, tokens).map(|key| KeyTarget {
            kind,
            target: Target::Key(key),
        })
    };
    let target = match expected {
        subjects::ORGANIZATION => key(ModelKind::Organization, &[id])?,
        subjects::ADMIN_TOKEN => key(ModelKind::AdminToken, &[id])?,
        subjects::HOST => key(ModelKind::Host, &[id])?,
        subjects::SERVER => key(ModelKind::Server, &[host, id])?,
        subjects::SERVER_KEY => key(ModelKind::ServerKey, &[host, id])?,
        subjects::HUMAN => key(ModelKind::Human, &[host, id])?,
        subjects::HUMAN_EMAIL => key(ModelKind::HumanEmail, &[host, id])?,
        // Identity reservations have no read model: sign-in reads them from the log.
        subjects::HUMAN_IDENTITY => return Ok(Vec::new()),
        subjects::GRANT => {
            let (human_id, server_id) =
                subjects::parse_grant_id(id).ok_or_else(|| FoldError::MalformedGrantId {
                    subject: subject.clone(),
                })?;
            key(ModelKind::Grant, &[host, human_id, server_id])?
        }
        subjects::AGENT => key(ModelKind::Agent, &[host, id])?,
        subjects::SESSION => key(ModelKind::Session, &[host, id])?,
        subjects::UPSTREAM_CREDENTIAL => {
            let (human_id, server_id) =
                subjects::parse_grant_id(id).ok_or_else(|| FoldError::MalformedGrantId {
                    subject: subject.clone(),
                })?;
            key(ModelKind::UpstreamCredential, &[host, human_id, server_id])?
        }
        _ => {
            return Err(FoldError::WrongAggregate {
                event_type: portcullis_proto::event_type(event),
                subject: subject.clone(),
            });
        }
    };
    let mut targets = vec![target];
    if let Body::HostCreated(created) = body {
        // The organization lists its hosts, so an admin's host list reads one key per
        // organization instead of scanning every tenant's hosts.
        targets.push(key(ModelKind::Organization, &[created.org_id.as_str()])?);
    }
    if let Body::AgentRegistered(registered) = body {
        // The authorization server finds a client by its id; the index entry is never
        // removed (a deleted agent's model is a tombstone, so the lookup ends there), and a
        // later registration of the same client id takes it over.
        let client = client_id_sha256_hex(&registered.client_id);
        targets.push(key(ModelKind::AgentClient, &[host, client.as_str()])?);
    }
    if let Body::HumanRemoved(_) = body {
        // A removed human keeps no grant: tombstone each one, so the data plane's
        // session → grant join denies at once, with no need to scan sessions.
        targets.push(KeyTarget {
            kind: ModelKind::Grant,
            target: Target::Prefix(model_key(ModelKind::Grant, &[host, id])?),
        });
    }
    Ok(targets)
}

/// The key token of an OAuth client id in `agent_client.<host>.<token>`: lower-case hex of
/// its SHA-256.
pub fn client_id_sha256_hex(client_id: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(client_id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests;
