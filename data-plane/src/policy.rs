//! Typed reads of the replica: the read models a decision joins, decoded on demand.
//!
//! Sessions, grants, agents and humans are held decoded by the replica itself (`Value`), so a
//! read is a map lookup. Server catalogs and hosts are larger and read on every request, so
//! their decoded form is cached next to the replica, keyed by the revision it was decoded
//! from: a change in the replica is a new revision, so a stale decoded value is never used.
//! The remaining kinds are decoded on each read.

use std::sync::Arc;

use portcullis_projector::models::{
    Agent, Grant, Host, Human, Organization, Server, ServerKeyOwner, UpstreamCredential, Versioned,
};
use portcullis_projector::{Buckets, ModelKind, model_key};
use portcullis_store::Key;
use serde::de::DeserializeOwned;

use crate::replica::{DecodedKind, Replica, SessionRecord};

/// A read model could not be used: fail closed.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// An id does not make a valid key (callers validated it, so this is a bug or an attack).
    #[error("invalid id in a read-model key: {0}")]
    BadKey(String),
    /// A stored value does not decode.
    #[error("read model {key} does not decode: {source}")]
    Corrupt {
        /// The key.
        key: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The event log has recorded a change to this key that the replica does not show yet:
    /// wait for it rather than decide from the old value.
    #[error("read model {key} has a recorded change at log sequence {sequence} not applied yet")]
    Pending {
        /// The key.
        key: String,
        /// The change's log sequence.
        sequence: u64,
    },
}

struct Decoded<T> {
    revision: u64,
    applied_through: u64,
    value: Option<Arc<T>>,
}

impl<T> Clone for Decoded<T> {
    fn clone(&self) -> Self {
        Decoded {
            revision: self.revision,
            applied_through: self.applied_through,
            value: self.value.clone(),
        }
    }
}

/// Typed access to the replica. Cheap to clone.
#[derive(Clone)]
pub struct Policy {
    replica: Replica,
    buckets: Arc<Buckets>,
    organizations: moka::sync::Cache<Key, Decoded<Organization>>,
    hosts: moka::sync::Cache<Key, Decoded<Host>>,
    servers: moka::sync::Cache<Key, Decoded<Server>>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// Reads over `replica`, whose buckets are `buckets`.
    pub fn new(replica: Replica, buckets: Buckets) -> Self {
        Self {
            replica,
            buckets: Arc::new(buckets),
            organizations: moka::sync::Cache::new(1_000),
            hosts: moka::sync::Cache::new(10_000),
            servers: moka::sync::Cache::new(10_000),
        }
    }

    /// The replica.
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    fn key(kind: ModelKind, tokens: &[&str]) -> Result<Key, PolicyError> {
        model_key(kind, tokens).map_err(|e| PolicyError::BadKey(e.to_string()))
    }

    /// Refuses to use a value the event log has a newer change for.
    fn settled(&self, key: &Key, applied_through: u64) -> Result<(), PolicyError> {
        match self.replica.pending_change(key, applied_through) {
            Some(sequence) => Err(PolicyError::Pending {
                key: key.to_string(),
                sequence,
            }),
            None => Ok(()),
        }
    }

    /// The value of `key` with its revision and `applied_through` (zeros when absent).
    fn decode<T: DeserializeOwned>(
        &self,
        kind: ModelKind,
        key: &Key,
    ) -> Result<(u64, u64, Option<T>), PolicyError> {
        let Some(cached) = self.replica.get(self.buckets.for_kind(kind), key) else {
            self.settled(key, 0)?;
            return Ok((0, 0, None));
        };
        let versioned: Versioned<T> =
            serde_json::from_slice(&cached.value.to_json()).map_err(|source| {
                PolicyError::Corrupt {
                    key: key.to_string(),
                    source,
                }
            })?;
        self.settled(key, versioned.applied_through)?;
        Ok((
            cached.revision,
            versioned.applied_through,
            match versioned.state {
                portcullis_projector::models::State::Live(model) => Some(model),
                portcullis_projector::models::State::Deleted => None,
            },
        ))
    }

    /// A kind the replica keeps decoded: no decoding here, unless the value did not decode
    /// when it arrived (then this reports why).
    fn read_decoded<T: DecodedKind>(
        &self,
        kind: ModelKind,
        tokens: &[&str],
    ) -> Result<Option<T>, PolicyError> {
        let key = Self::key(kind, tokens)?;
        let Some(cached) = self.replica.get(self.buckets.for_kind(kind), &key) else {
            self.settled(&key, 0)?;
            return Ok(None);
        };
        let model = match T::model(&cached.value) {
            Some(model) => model.clone(),
            None => {
                T::from_json(&cached.value.to_json()).map_err(|source| PolicyError::Corrupt {
                    key: key.to_string(),
                    source,
                })?
            }
        };
        self.settled(&key, model.applied_through)?;
        Ok(model.live)
    }

    fn read<T: DeserializeOwned>(
        &self,
        kind: ModelKind,
        tokens: &[&str],
    ) -> Result<Option<T>, PolicyError> {
        let key = Self::key(kind, tokens)?;
        Ok(self.decode(kind, &key)?.2)
    }

    fn read_cached<T: DeserializeOwned + Send + Sync + 'static>(
        &self,
        cache: &moka::sync::Cache<Key, Decoded<T>>,
        kind: ModelKind,
        tokens: &[&str],
    ) -> Result<Option<Arc<T>>, PolicyError> {
        let key = Self::key(kind, tokens)?;
        let bucket = self.buckets.for_kind(kind);
        let current = self.replica.get(bucket, &key).map_or(0, |c| c.revision);
        if let Some(decoded) = cache.get(&key)
            && decoded.revision == current
        {
            self.settled(&key, decoded.applied_through)?;
            return Ok(decoded.value);
        }
        let (revision, applied_through, value) = self.decode::<T>(kind, &key)?;
        let value = value.map(Arc::new);
        cache.insert(
            key,
            Decoded {
                revision,
                applied_through,
                value: value.clone(),
            },
        );
        Ok(value)
    }

    /// The organization `org_id`.
    pub fn organization(&self, org_id: &str) -> Result<Option<Arc<Organization>>, PolicyError> {
        self.read_cached(&self.organizations, ModelKind::Organization, &[org_id])
    }

    /// The host `host_id`.
    pub fn host(&self, host_id: &str) -> Result<Option<Arc<Host>>, PolicyError> {
        self.read_cached(&self.hosts, ModelKind::Host, &[host_id])
    }

    /// The server `server_id` of `host_id`.
    pub fn server(
        &self,
        host_id: &str,
        server_id: &str,
    ) -> Result<Option<Arc<Server>>, PolicyError> {
        self.read_cached(&self.servers, ModelKind::Server, &[host_id, server_id])
    }

    /// The server holding `key` in `host_id`.
    pub fn server_by_key(&self, host_id: &str, key: &str) -> Result<Option<String>, PolicyError> {
        Ok(self
            .read::<ServerKeyOwner>(ModelKind::ServerKey, &[host_id, key])?
            .map(|owner| owner.server_id))
    }

    /// The consent session `session_id` of `host_id`.
    pub fn session(
        &self,
        host_id: &str,
        session_id: &str,
    ) -> Result<Option<SessionRecord>, PolicyError> {
        self.read_decoded(ModelKind::Session, &[host_id, session_id])
    }

    /// `human_id`'s credential at the OAuth-protected upstream `server_id`, if one is live.
    pub fn upstream_credential(
        &self,
        host_id: &str,
        human_id: &str,
        server_id: &str,
    ) -> Result<Option<UpstreamCredential>, PolicyError> {
        self.read(
            ModelKind::UpstreamCredential,
            &[host_id, human_id, server_id],
        )
    }

    /// The grant of `human_id` on `server_id`.
    pub fn grant(
        &self,
        host_id: &str,
        human_id: &str,
        server_id: &str,
    ) -> Result<Option<Arc<Grant>>, PolicyError> {
        self.read_decoded(ModelKind::Grant, &[host_id, human_id, server_id])
    }

    /// The agent `agent_id`.
    pub fn agent(&self, host_id: &str, agent_id: &str) -> Result<Option<Arc<Agent>>, PolicyError> {
        self.read_decoded(ModelKind::Agent, &[host_id, agent_id])
    }

    /// The human `human_id`.
    pub fn human(&self, host_id: &str, human_id: &str) -> Result<Option<Arc<Human>>, PolicyError> {
        self.read_decoded(ModelKind::Human, &[host_id, human_id])
    }
}

#[cfg(test)]
mod tests;
