//! How the replica holds a value in memory.
//!
//! The store holds read models as JSON (`Versioned<T>`, `portcullis_projector::models`).
//! Every `tools/call` reads a session, its agent, its human and their grant; decoding each from
//! JSON on every read costs microseconds per call, and keeping sessions as JSON costs their
//! field names once per session, while sessions are what a replica holds most of (one per
//! connected agent). So these four kinds are decoded once, when the watch delivers them, and
//! kept decoded; a session in a compact form (every field in one allocation, ULID ids as
//! their 16 bytes). Every other
//! kind stays the bytes the store holds (`Policy` caches hosts and servers decoded per
//! revision). A value of a decoded kind that does not decode is kept as its bytes, so reading
//! it reports why, as before.
//!
//! `Value::to_json` gives the stored form back, for the pending-change follower, which folds
//! events into the current value with the projector's own code.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use portcullis_projector::ModelKind;
use portcullis_projector::models::{
    Agent, Grant, Human, Session, SessionRevocation, State, Versioned,
};
use portcullis_proto::TrustLevel;
use portcullis_store::Key;

/// A decoded read model: the log sequence it is folded through, and the model unless it is a
/// tombstone. Cheap to clone.
#[derive(Clone, Debug, PartialEq)]
pub struct Model<T> {
    /// `Versioned::applied_through`.
    pub applied_through: u64,
    /// The model; `None` for a tombstone.
    pub live: Option<T>,
}

impl<T: Clone> Model<Arc<T>> {
    fn to_versioned(&self) -> Versioned<T> {
        Versioned {
            applied_through: self.applied_through,
            state: self
                .live
                .as_deref()
                .map_or(State::Deleted, |model| State::Live(model.clone())),
        }
    }
}

/// A value the replica holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// The stored bytes: kinds kept as stored, or a value that did not decode. (Not `Bytes`:
    /// half the size, and every key's slot in the replica is as large as the largest variant.)
    Json(Arc<[u8]>),
    /// A session.
    Session(Model<SessionRecord>),
    /// An agent.
    Agent(Model<Arc<Agent>>),
    /// A grant.
    Grant(Model<Arc<Grant>>),
    /// A human.
    Human(Model<Arc<Human>>),
}

/// The kinds the replica keeps decoded: how to decode one and find it in a `Value`.
pub trait DecodedKind: Clone + Sized {
    /// The decoded model, if `value` holds one of this kind.
    fn model(value: &Value) -> Option<&Model<Self>>;
    /// Decodes the stored form.
    fn from_json(bytes: &[u8]) -> Result<Model<Self>, serde_json::Error>;
}

macro_rules! decoded_kind {
    ($model:ty, $variant:ident) => {
        impl DecodedKind for Arc<$model> {
            fn model(value: &Value) -> Option<&Model<Self>> {
                match value {
                    Value::$variant(model) => Some(model),
                    _ => None,
                }
            }

            fn from_json(bytes: &[u8]) -> Result<Model<Self>, serde_json::Error> {
                let versioned = serde_json::from_slice::<Versioned<$model>>(bytes)?;
                Ok(Model {
                    applied_through: versioned.applied_through,
                    live: match versioned.state {
                        State::Live(model) => Some(Arc::new(model)),
                        State::Deleted => None,
                    },
                })
            }
        }
    };
}

decoded_kind!(Agent, Agent);
decoded_kind!(Grant, Grant);
decoded_kind!(Human, Human);

impl DecodedKind for SessionRecord {
    fn model(value: &Value) -> Option<&Model<Self>> {
        match value {
            Value::Session(model) => Some(model),
            _ => None,
        }
    }

    fn from_json(bytes: &[u8]) -> Result<Model<Self>, serde_json::Error> {
        let session = serde_json::from_slice::<Versioned<Session>>(bytes)?;
        let live = match &session.state {
            State::Live(session) => {
                Some(SessionRecord::from_session(session).ok_or_else(|| {
                    serde::de::Error::custom(
                        "an id of the session is longer than 65,535 bytes, or a timeout longer \
                         than u32::MAX seconds",
                    )
                })?)
            }
            State::Deleted => None,
        };
        Ok(Model {
            applied_through: session.applied_through,
            live,
        })
    }
}

/// The kind a key holds, from its first token.
fn kind_of(key: &Key) -> Option<ModelKind> {
    let prefix = key.as_str().split('.').next()?;
    [
        ModelKind::Session,
        ModelKind::Agent,
        ModelKind::Grant,
        ModelKind::Human,
    ]
    .into_iter()
    .find(|kind| kind.key_prefix() == prefix)
}

impl Value {
    /// The in-memory form of `bytes`, stored under `key`.
    pub fn decode(key: &Key, bytes: Bytes) -> Self {
        let value = match kind_of(key) {
            Some(ModelKind::Session) => SessionRecord::from_json(&bytes).map(Value::Session),
            Some(ModelKind::Agent) => Arc::<Agent>::from_json(&bytes).map(Value::Agent),
            Some(ModelKind::Grant) => Arc::<Grant>::from_json(&bytes).map(Value::Grant),
            Some(ModelKind::Human) => Arc::<Human>::from_json(&bytes).map(Value::Human),
            _ => return Value::Json(Arc::from(bytes.as_ref())),
        };
        value.unwrap_or_else(|_| Value::Json(Arc::from(bytes.as_ref())))
    }

    /// The stored form (JSON): the bytes kept, or the decoded value encoded again.
    pub fn to_json(&self) -> Cow<'_, [u8]> {
        let encoded = match self {
            Value::Json(bytes) => return Cow::Borrowed(bytes.as_ref()),
            Value::Session(session) => serde_json::to_vec(&Versioned {
                applied_through: session.applied_through,
                state: session
                    .live
                    .as_ref()
                    .map_or(State::Deleted, |record| State::Live(record.to_session())),
            }),
            Value::Agent(agent) => serde_json::to_vec(&agent.to_versioned()),
            Value::Grant(grant) => serde_json::to_vec(&grant.to_versioned()),
            Value::Human(human) => serde_json::to_vec(&human.to_versioned()),
        };
        // Encoding a value that was decoded from JSON cannot fail (no maps with non-string
        // keys, no failing `Serialize`); an empty value would read as corrupt, failing closed.
        Cow::Owned(encoded.unwrap_or_default())
    }
}

/// Offsets in a `SessionRecord`'s bytes (all numbers little-endian).
mod layout {
    pub const TRUST: usize = 0;
    pub const REVOKED: usize = 1;
    /// Two bits per id (human, agent, client, server; lowest first): `ID_TEXT`, `ID_ULID` or
    /// `ID_ULID_LOWER`.
    pub const ID_FORMS: usize = 2;
    pub const STARTED_AT: usize = 3;
    pub const LAST_USED: usize = 11;
    /// `u32` seconds (at most a year, by the session rules).
    pub const IDLE: usize = 19;
    pub const ABSOLUTE: usize = 23;
    pub const STARTED_SEQUENCE: usize = 27;
    /// Four `u16` lengths of the ids as kept (16 for a ULID).
    pub const LENGTHS: usize = 35;
    /// The ids back to back; then, for a revoked session, the time (`i64` ms) and the reason.
    pub const IDS: usize = 43;

    pub const ID_TEXT: u8 = 0;
    pub const ID_ULID: u8 = 1;
    pub const ID_ULID_LOWER: u8 = 2;
}

/// An id as kept: its text, or the 16 bytes of a ULID whose canonical text (upper case, or
/// all lower case as OAuth client ids are minted) is exactly the id. A ULID takes 16 bytes
/// instead of 26, and most ids are ULIDs.
fn compact_id(id: &str) -> (u8, Cow<'_, [u8]>) {
    if id.len() == ulid::ULID_LEN
        && let Ok(parsed) = ulid::Ulid::from_string(id)
    {
        let mut canonical = [0u8; ulid::ULID_LEN];
        let canonical = parsed.array_to_str(&mut canonical);
        let raw = || Cow::Owned(parsed.to_bytes().to_vec());
        if canonical == id {
            return (layout::ID_ULID, raw());
        }
        canonical.make_ascii_lowercase();
        if canonical == id {
            return (layout::ID_ULID_LOWER, raw());
        }
    }
    (layout::ID_TEXT, Cow::Borrowed(id.as_bytes()))
}

/// An id read from a `SessionRecord`: borrowed text, or a ULID spelled out on the stack.
/// Dereferences to `&str`.
#[derive(Clone, Copy)]
pub enum Id<'a> {
    /// Kept as text.
    Text(&'a str),
    /// Kept as a ULID; the canonical text.
    Ulid([u8; ulid::ULID_LEN]),
}

impl std::ops::Deref for Id<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Id::Text(text) => text,
            // Only `SessionRecord::id` builds this, from ULID text: ASCII.
            Id::Ulid(text) => std::str::from_utf8(text).unwrap_or(""),
        }
    }
}

impl std::fmt::Debug for Id<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

impl PartialEq<str> for Id<'_> {
    fn eq(&self, other: &str) -> bool {
        **self == *other
    }
}

impl PartialEq<&str> for Id<'_> {
    fn eq(&self, other: &&str) -> bool {
        **self == **other
    }
}

impl PartialEq<String> for Id<'_> {
    fn eq(&self, other: &String) -> bool {
        **self == **other
    }
}

/// A consent session as the replica keeps it: every field of `Session` in one shared
/// allocation (a `Session` takes five), ULID ids as their 16 bytes: about 125 bytes for a
/// typical session. Cheap to clone.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRecord(Arc<[u8]>);

impl std::fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.to_session().fmt(f)
    }
}

impl SessionRecord {
    /// The compact form of `session`; `None` if an id is longer than 65,535 bytes or a
    /// timeout longer than `u32::MAX` seconds (the session rules allow a year).
    pub fn from_session(session: &Session) -> Option<Self> {
        let ids = [
            compact_id(&session.human_id),
            compact_id(&session.agent_id),
            compact_id(&session.client_id),
            compact_id(&session.server_id),
        ];
        let revoked = session
            .revoked
            .as_ref()
            .map(|revoked| (revoked.at_ms, revoked.reason.as_str()));
        let text: usize = ids.iter().map(|(_, id)| id.len()).sum::<usize>()
            + revoked.map_or(0, |(_, reason)| 8 + reason.len());
        let mut bytes = Vec::with_capacity(layout::IDS + text);
        let trust = TrustLevel::ALL
            .iter()
            .position(|level| *level == session.trust_level)
            .and_then(|index| u8::try_from(index).ok())?;
        bytes.push(trust);
        bytes.push(u8::from(revoked.is_some()));
        let forms = ids
            .iter()
            .enumerate()
            .fold(0u8, |forms, (index, (form, _))| {
                forms | (form << (2 * index))
            });
        bytes.push(forms);
        bytes.extend_from_slice(&session.started_at_ms.to_le_bytes());
        bytes.extend_from_slice(&session.last_used_ms.to_le_bytes());
        bytes.extend_from_slice(
            &u32::try_from(session.idle_timeout_seconds)
                .ok()?
                .to_le_bytes(),
        );
        bytes.extend_from_slice(
            &u32::try_from(session.absolute_timeout_seconds)
                .ok()?
                .to_le_bytes(),
        );
        bytes.extend_from_slice(&session.started_sequence.to_le_bytes());
        for (_, id) in &ids {
            bytes.extend_from_slice(&u16::try_from(id.len()).ok()?.to_le_bytes());
        }
        for (_, id) in &ids {
            bytes.extend_from_slice(id);
        }
        if let Some((at_ms, reason)) = revoked {
            bytes.extend_from_slice(&at_ms.to_le_bytes());
            bytes.extend_from_slice(reason.as_bytes());
        }
        Some(Self(Arc::from(bytes)))
    }

    fn array<const N: usize>(&self, at: usize) -> [u8; N] {
        self.0
            .get(at..at + N)
            .and_then(|bytes| <[u8; N]>::try_from(bytes).ok())
            .unwrap_or([0; N])
    }

    fn i64_at(&self, at: usize) -> i64 {
        i64::from_le_bytes(self.array(at))
    }

    fn seconds_at(&self, at: usize) -> u64 {
        u64::from(u32::from_le_bytes(self.array(at)))
    }

    /// Where the ids end (the revocation, if any, follows).
    fn ids_end(&self) -> usize {
        layout::IDS + (0..4).map(|i| self.id_length(i)).sum::<usize>()
    }

    fn id_length(&self, index: usize) -> usize {
        usize::from(u16::from_le_bytes(self.array(layout::LENGTHS + 2 * index)))
    }

    /// Id `index` (0 to 3: human, agent, client, server).
    fn id(&self, index: usize) -> Id<'_> {
        let start = layout::IDS + (0..index).map(|i| self.id_length(i)).sum::<usize>();
        let bytes = self
            .0
            .get(start..start + self.id_length(index))
            .unwrap_or_default();
        let form = self
            .0
            .get(layout::ID_FORMS)
            .map_or(0, |forms| (forms >> (2 * index)) & 0b11);
        match (form, <[u8; 16]>::try_from(bytes)) {
            (layout::ID_ULID | layout::ID_ULID_LOWER, Ok(raw)) => {
                let mut text = [0u8; ulid::ULID_LEN];
                ulid::Ulid::from_bytes(raw).array_to_str(&mut text);
                if form == layout::ID_ULID_LOWER {
                    text.make_ascii_lowercase();
                }
                Id::Ulid(text)
            }
            _ => Id::Text(std::str::from_utf8(bytes).unwrap_or("")),
        }
    }

    /// The consenting human.
    pub fn human_id(&self) -> Id<'_> {
        self.id(0)
    }

    /// The agent.
    pub fn agent_id(&self) -> Id<'_> {
        self.id(1)
    }

    /// The agent's OAuth client id.
    pub fn client_id(&self) -> Id<'_> {
        self.id(2)
    }

    /// The one server consented to.
    pub fn server_id(&self) -> Id<'_> {
        self.id(3)
    }

    /// The consented trust level.
    pub fn trust_level(&self) -> TrustLevel {
        // Only this module writes the byte; anything else reads as the lowest level.
        self.0
            .get(layout::TRUST)
            .and_then(|index| TrustLevel::ALL.get(usize::from(*index)))
            .copied()
            .unwrap_or(TrustLevel::Low)
    }

    /// Log sequence of the `SessionStarted`; compared with the agent's revocations.
    pub fn started_sequence(&self) -> u64 {
        u64::from_le_bytes(self.array(layout::STARTED_SEQUENCE))
    }

    /// Whether the session was revoked.
    pub fn is_revoked(&self) -> bool {
        self.0.get(layout::REVOKED).is_none_or(|flag| *flag != 0)
    }

    /// The `Session` this record was made from.
    pub fn to_session(&self) -> Session {
        let end = self.ids_end();
        Session {
            human_id: self.human_id().to_string(),
            agent_id: self.agent_id().to_string(),
            client_id: self.client_id().to_string(),
            server_id: self.server_id().to_string(),
            trust_level: self.trust_level(),
            started_at_ms: self.i64_at(layout::STARTED_AT),
            last_used_ms: self.i64_at(layout::LAST_USED),
            idle_timeout_seconds: self.seconds_at(layout::IDLE),
            absolute_timeout_seconds: self.seconds_at(layout::ABSOLUTE),
            started_sequence: self.started_sequence(),
            revoked: self.is_revoked().then(|| SessionRevocation {
                reason: self
                    .0
                    .get(end + 8..)
                    .and_then(|bytes| std::str::from_utf8(bytes).ok())
                    .unwrap_or("")
                    .to_owned(),
                at_ms: self.i64_at(end),
            }),
        }
    }

    /// Whether the session is usable at `now_ms`: not revoked and not expired (the rule of
    /// `Session::is_live_at`).
    pub fn is_live_at(&self, now_ms: i64) -> bool {
        !self.is_revoked()
            && now_ms
                < Session::expiry_at_ms(
                    self.i64_at(layout::STARTED_AT),
                    self.i64_at(layout::LAST_USED),
                    self.seconds_at(layout::IDLE),
                    self.seconds_at(layout::ABSOLUTE),
                )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

    use super::*;

    fn session(revoked: bool) -> Session {
        Session {
            human_id: "01HUMAN".to_owned(),
            agent_id: "01AGENT".to_owned(),
            client_id: "https://client.example/meta.json".to_owned(),
            server_id: "01SERVER".to_owned(),
            trust_level: TrustLevel::Medium,
            started_at_ms: 1_000,
            last_used_ms: 2_000,
            idle_timeout_seconds: 60,
            absolute_timeout_seconds: 3_600,
            started_sequence: 42,
            revoked: revoked.then(|| SessionRevocation {
                reason: "admin".to_owned(),
                at_ms: 3_000,
            }),
        }
    }

    fn key(text: &str) -> Key {
        Key::new(text).unwrap()
    }

    #[test]
    fn a_session_is_kept_compact_and_gives_back_what_was_stored() {
        for revoked in [false, true] {
            let stored = Versioned {
                applied_through: 7,
                state: State::Live(session(revoked)),
            };
            let bytes = Bytes::from(serde_json::to_vec(&stored).unwrap());
            let value = Value::decode(&key("session.h.s1"), bytes.clone());
            let Value::Session(Model {
                applied_through: 7,
                live: Some(record),
            }) = &value
            else {
                panic!("not decoded: {value:?}");
            };
            assert_eq!(record.trust_level(), TrustLevel::Medium);
            assert_eq!(record.started_sequence(), 42);
            assert_eq!(record.is_revoked(), revoked);
            assert_eq!(record.human_id(), "01HUMAN");
            assert_eq!(record.agent_id(), "01AGENT");
            assert_eq!(record.client_id(), "https://client.example/meta.json");
            assert_eq!(record.server_id(), "01SERVER");
            assert_eq!(record.to_session(), session(revoked));
            assert_eq!(record.is_live_at(2_500), session(revoked).is_live_at(2_500));
            assert!(!record.is_live_at(62_000), "idle deadline");
            let again: Versioned<Session> = serde_json::from_slice(&value.to_json()).unwrap();
            assert_eq!(again, stored);
        }
    }

    #[test]
    fn ulid_ids_are_kept_as_sixteen_bytes_and_read_back_exactly() {
        let upper = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
        let lower = "01arz3ndektsv4rrffq69g5fav";
        // Ids that decode as ULIDs but are not their canonical text stay text: mixed case,
        // Crockford's aliases (`I`/`L` for 1, `O` for 0), and a ULID too long.
        let mixed = "01ARZ3NDEKTSV4RRFFQ69G5Fav";
        let alias = "0IARZ3NDEKTSV4RRFFQ69G5FAV";
        for (human, agent, client, server, packed) in [
            (upper, upper, lower, upper, 4),
            (mixed, alias, "client-1", "01HUMAN", 0),
            (
                upper,
                "7ZZZZZZZZZZZZZZZZZZZZZZZZZ",
                lower,
                "8ZZZZZZZZZZZZZZZZZZZZZZZZZ",
                3,
            ),
        ] {
            for revoked in [false, true] {
                let session = Session {
                    human_id: human.to_owned(),
                    agent_id: agent.to_owned(),
                    client_id: client.to_owned(),
                    server_id: server.to_owned(),
                    ..session(revoked)
                };
                let record = SessionRecord::from_session(&session).unwrap();
                assert_eq!(record.human_id(), human);
                assert_eq!(record.agent_id(), agent);
                assert_eq!(record.client_id(), client);
                assert_eq!(record.server_id(), server);
                assert_eq!(record.to_session(), session);
                let text: usize = [human, agent, client, server]
                    .iter()
                    .map(|id| id.len())
                    .sum();
                let reason = if revoked { 8 + "admin".len() } else { 0 };
                assert_eq!(
                    record.0.len(),
                    layout::IDS + text - packed * (ulid::ULID_LEN - 16) + reason,
                    "{human} {agent} {client} {server}"
                );
            }
        }
    }

    #[test]
    fn a_timeout_beyond_u32_seconds_does_not_decode_and_reads_as_corrupt() {
        let stored = Versioned {
            applied_through: 7,
            state: State::Live(Session {
                idle_timeout_seconds: u64::from(u32::MAX) + 1,
                ..session(false)
            }),
        };
        let bytes = Bytes::from(serde_json::to_vec(&stored).unwrap());
        assert!(matches!(
            Value::decode(&key("session.h.s1"), bytes),
            Value::Json(_)
        ));
    }

    #[test]
    fn tombstones_and_other_kinds_round_trip() {
        let tombstone = Versioned::<Session> {
            applied_through: 9,
            state: State::Deleted,
        };
        let bytes = Bytes::from(serde_json::to_vec(&tombstone).unwrap());
        let value = Value::decode(&key("session.h.s1"), bytes);
        assert!(matches!(
            &value,
            Value::Session(Model {
                applied_through: 9,
                live: None
            })
        ));
        let again: Versioned<Session> = serde_json::from_slice(&value.to_json()).unwrap();
        assert_eq!(again, tombstone);

        let grant = Versioned {
            applied_through: 3,
            state: State::Live(Grant {
                human_id: "h".to_owned(),
                server_id: "s".to_owned(),
                max_trust_level: TrustLevel::High,
                issued_sequence: 2,
            }),
        };
        let bytes = Bytes::from(serde_json::to_vec(&grant).unwrap());
        let value = Value::decode(&key("grant.h.h1.s1"), bytes);
        assert!(matches!(&value, Value::Grant(g) if g.to_versioned() == grant));
        let json = value.to_json();
        assert_eq!(
            serde_json::from_slice::<Versioned<Grant>>(&json).unwrap(),
            grant
        );

        // A host stays as stored; so does a session that does not decode.
        let host = Bytes::from_static(br#"{"applied_through":1,"name":"x"}"#);
        assert_eq!(
            Value::decode(&key("host.h"), host.clone()),
            Value::Json(Arc::from(host.as_ref()))
        );
        let broken = Bytes::from_static(br#"{"applied_through":1,"human_id":5}"#);
        let value = Value::decode(&key("session.h.s2"), broken.clone());
        assert_eq!(value, Value::Json(Arc::from(broken.as_ref())));
        assert_eq!(value.to_json().as_ref(), broken.as_ref());
    }
}
