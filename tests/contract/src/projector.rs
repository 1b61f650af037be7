//! The projector's contract on a real backend: it catches up and follows, rebuilds identical
//! read models from zero, changes nothing twice after a restart, converges when two race, keeps
//! its work across a backend restart, and stops (never skips) at an event it cannot decode.
//!
//! Owns: a realistic domain history written with `portcullis-proto`, and the helpers that run
//! projectors and read whole read-model buckets back. Must not: know the backend.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use portcullis_projector::models::{Agent, Grant, Server, Session, Versioned};
use portcullis_projector::{
    Buckets, Progress, Projector, ProjectorError, ProjectorOptions, READ_MODEL_BUCKETS,
};
use portcullis_proto::events::v1::{self as pb, Event, event::Body};
use portcullis_proto::{TrustLevel, encode_event, subjects};
use portcullis_store::{CommandId, EventLog, Expect, Key, NewEvent, ReadModelStore, Subject};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{Backend, Stores, key, step};

/// The tenant of the history.
pub const HOST: &str = "acme-pink-panda-6942";
const ORG: &str = "01JD8W0000ACMEORG000000000";
const TOKEN: &str = "01JD8W1111ADM1NT0KEN000000";
const SERVER: &str = "01JD8X4A1B2C3D4E5F6G7H8J9K";
const ADA: &str = "01JD8X3T7Q9B2M4N6P8R0S2T4V";
const BOB: &str = "01JD8X3V0W1X2Y3Z4A5B6C7D8E";
const AGENT: &str = "01JD8X5M0N1P2Q3R4S5T6V7W8X";
const SESSION: &str = "01JD8X6Y9Z0A1B2C3D4E5F6G7H";
/// SHA-256 hex of the normalized emails (the control plane computes them; fixed here).
const ADA_EMAIL_SHA: &str = "3f1b2a9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a";
const BOB_EMAIL_SHA: &str = "7c0e1d2c3b4a59687f6e5d4c3b2a19080f1e2d3c4b5a69788796a5b4c3d2e1f0";
const STARTED_AT_MS: i64 = 1_760_000_000_000;

// ---------------------------------------------------------------------------------------
// A realistic history
// ---------------------------------------------------------------------------------------

/// A fresh command id per append in this process.
fn next_command() -> CommandId {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    CommandId::parse(&format!(
        "projector-cmd-{}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
    .unwrap()
}

fn event(body: Body) -> Event {
    Event {
        meta: Some(pb::EventMeta {
            occurred_at_ms: STARTED_AT_MS,
            actor: Some(pb::Actor {
                kind: Some(pb::actor::Kind::AdminTokenId(TOKEN.to_owned())),
            }),
            correlation_id: "contract".to_owned(),
        }),
        body: Some(body),
    }
}

/// Appends `body` to `subject` at the subject's current version, as a command handler would;
/// returns the event's sequence.
pub async fn append(log: &dyn EventLog, subject: &Subject, body: Body) -> u64 {
    append_raw(log, subject, encode_event(event(body))).await
}

async fn append_raw(log: &dyn EventLog, subject: &Subject, new: NewEvent) -> u64 {
    let version = log.load(subject).await.unwrap().version;
    log.append(subject, version, &next_command(), new)
        .await
        .unwrap()
        .sequence
}

fn tool(name: &str, level: TrustLevel, keyword: &str) -> pb::Tool {
    pb::Tool {
        name: name.to_owned(),
        description: format!("{name} on GitHub"),
        input_schema_sha256: vec![0x5a; 32],
        trust_level: level.into(),
        enabled: true,
        classification: Some(pb::Classification {
            kind: Some(pb::classification::Kind::Auto(pb::AutoClassification {
                matched_keyword: keyword.to_owned(),
                reason: format!("name contains {keyword:?}"),
            })),
        }),
    }
}

fn grant_subject(human: &str) -> Subject {
    subjects::grant(HOST, human, SERVER).unwrap()
}

/// Writes a tenant's life up to steady state: organization, admin token, host, an imported
/// server, two humans with grants, an agent with a cap and a live session; then one human is
/// removed. Returns the last sequence.
pub async fn append_history(log: &dyn EventLog) -> u64 {
    append(
        log,
        &subjects::organization(ORG).unwrap(),
        Body::OrganizationCreated(pb::OrganizationCreated {
            org_id: ORG.to_owned(),
            name: "Acme".to_owned(),
        }),
    )
    .await;
    append(
        log,
        &subjects::admin_token(TOKEN).unwrap(),
        Body::AdminTokenIssued(pb::AdminTokenIssued {
            token_id: TOKEN.to_owned(),
            org_ids: vec![ORG.to_owned()],
            token_sha256: vec![0x11; 32],
            label: "ci".to_owned(),
        }),
    )
    .await;
    append(
        log,
        &subjects::host(HOST).unwrap(),
        Body::HostCreated(pb::HostCreated {
            host_id: HOST.to_owned(),
            org_id: ORG.to_owned(),
            prefix: "acme".to_owned(),
            is_default: true,
            settings: None,
        }),
    )
    .await;
    append(
        log,
        &subjects::server_key(HOST, "github").unwrap(),
        Body::ServerKeyClaimed(pb::ServerKeyClaimed {
            server_id: SERVER.to_owned(),
        }),
    )
    .await;
    let server = subjects::server(HOST, SERVER).unwrap();
    append(
        log,
        &server,
        Body::ServerImported(pb::ServerImported {
            server_id: SERVER.to_owned(),
            key: "github".to_owned(),
            url: "https://mcp.example.com/github".to_owned(),
            name: "GitHub".to_owned(),
            description: "Issues and pull requests".to_owned(),
            upstream_auth: Some(pb::UpstreamAuth {
                mode: Some(pb::upstream_auth::Mode::None(pb::NoUpstreamAuth {})),
            }),
            timeout_seconds: None,
            tools: vec![
                tool("list_issues", TrustLevel::Low, ""),
                tool("create_issue", TrustLevel::Medium, "create"),
                tool("delete_repo", TrustLevel::High, "delete"),
            ],
        }),
    )
    .await;
    for (human, email, sha, level) in [
        (ADA, "ada@example.com", ADA_EMAIL_SHA, TrustLevel::High),
        (BOB, "bob@example.com", BOB_EMAIL_SHA, TrustLevel::Medium),
    ] {
        append(
            log,
            &subjects::human_email(HOST, sha).unwrap(),
            Body::HumanEmailClaimed(pb::HumanEmailClaimed {
                human_id: human.to_owned(),
            }),
        )
        .await;
        append(
            log,
            &subjects::human(HOST, human).unwrap(),
            Body::HumanAdded(pb::HumanAdded {
                human_id: human.to_owned(),
                email: email.to_owned(),
                pre_authorized: true,
            }),
        )
        .await;
        append(
            log,
            &grant_subject(human),
            Body::GrantIssued(pb::GrantIssued {
                human_id: human.to_owned(),
                server_id: SERVER.to_owned(),
                max_trust_level: level.into(),
            }),
        )
        .await;
    }
    let agent = subjects::agent(HOST, AGENT).unwrap();
    append(
        log,
        &agent,
        Body::AgentRegistered(pb::AgentRegistered {
            agent_id: AGENT.to_owned(),
            client_id: "https://claude.ai/oauth/mcp-client.json".to_owned(),
            name: "Claude Desktop".to_owned(),
            uri: "https://claude.ai".to_owned(),
            agent_type: "claude-desktop".to_owned(),
            redirect_uris: vec!["http://127.0.0.1:33418/oauth/callback".to_owned()],
            human_id: Some(ADA.to_owned()),
        }),
    )
    .await;
    let session = subjects::session(HOST, SESSION).unwrap();
    append(
        log,
        &session,
        Body::SessionStarted(pb::SessionStarted {
            session_id: SESSION.to_owned(),
            human_id: ADA.to_owned(),
            agent_id: AGENT.to_owned(),
            client_id: "https://claude.ai/oauth/mcp-client.json".to_owned(),
            server_id: SERVER.to_owned(),
            trust_level: TrustLevel::Medium.into(),
            started_at_ms: STARTED_AT_MS,
            idle_timeout_seconds: portcullis_proto::DEFAULT_SESSION_IDLE_SECONDS,
            absolute_timeout_seconds: portcullis_proto::DEFAULT_SESSION_ABSOLUTE_SECONDS,
        }),
    )
    .await;
    append(
        log,
        &agent,
        Body::AgentCapSet(pb::AgentCapSet {
            server_id: SERVER.to_owned(),
            max_trust_level: TrustLevel::Low.into(),
        }),
    )
    .await;
    append(
        log,
        &server,
        Body::ToolChanged(pb::ToolChanged {
            name: "delete_repo".to_owned(),
            trust_level: None,
            enabled: Some(false),
            classification: None,
        }),
    )
    .await;
    append(
        log,
        &session,
        Body::SessionRefreshed(pb::SessionRefreshed {
            at_ms: STARTED_AT_MS + 60_000,
            ..Default::default()
        }),
    )
    .await;
    append(
        log,
        &grant_subject(ADA),
        Body::GrantChanged(pb::GrantChanged {
            max_trust_level: TrustLevel::Medium.into(),
        }),
    )
    .await;
    append(
        log,
        &subjects::human(HOST, BOB).unwrap(),
        Body::HumanRemoved(pb::HumanRemoved {}),
    )
    .await
}

/// What happens later, while projectors follow: Ada's grant is revoked, her session ends,
/// the agent loses the server. Returns the last sequence.
pub async fn append_revocations(log: &dyn EventLog) -> u64 {
    append(
        log,
        &grant_subject(ADA),
        Body::GrantRevoked(pb::GrantRevoked {}),
    )
    .await;
    append(
        log,
        &subjects::session(HOST, SESSION).unwrap(),
        Body::SessionRevoked(pb::SessionRevoked {
            reason: "grant revoked".to_owned(),
        }),
    )
    .await;
    append(
        log,
        &subjects::agent(HOST, AGENT).unwrap(),
        Body::AgentServerRevoked(pb::AgentServerRevoked {
            server_id: SERVER.to_owned(),
        }),
    )
    .await
}

/// Many small changes to the same few keys, for races: refreshes and grant level flips.
pub async fn append_churn(log: &dyn EventLog, rounds: i64) -> u64 {
    let session = subjects::session(HOST, SESSION).unwrap();
    let mut last = 0;
    for i in 0..rounds {
        append(
            log,
            &session,
            Body::SessionRefreshed(pb::SessionRefreshed {
                at_ms: STARTED_AT_MS + 120_000 + i,
                ..Default::default()
            }),
        )
        .await;
        let level = if i % 2 == 0 {
            TrustLevel::Low
        } else {
            TrustLevel::High
        };
        last = append(
            log,
            &grant_subject(ADA),
            Body::GrantChanged(pb::GrantChanged {
                max_trust_level: level.into(),
            }),
        )
        .await;
    }
    last
}

// ---------------------------------------------------------------------------------------
// Running projectors and reading read models
// ---------------------------------------------------------------------------------------

/// A projector running on its own task.
pub struct Running {
    task: JoinHandle<Result<(), ProjectorError>>,
    shutdown: CancellationToken,
    /// Its progress.
    pub progress: watch::Receiver<Progress>,
    /// Its buckets.
    pub buckets: Buckets,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("progress", &*self.progress.borrow())
            .finish_non_exhaustive()
    }
}

/// The options of a projector named `name` writing buckets with `suffix`.
pub fn options(name: &str, suffix: Option<&str>) -> ProjectorOptions {
    ProjectorOptions {
        name: name.to_owned(),
        bucket_suffix: suffix.map(str::to_owned),
        ..ProjectorOptions::default()
    }
}

/// Starts a projector on `stores`.
pub fn start(stores: &Stores, options: ProjectorOptions) -> Running {
    let projector = Projector::new(stores.log.clone(), stores.kv.clone(), options).unwrap();
    let progress = projector.progress();
    let buckets = projector.buckets().clone();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(projector.run(shutdown.clone()));
    Running {
        task,
        shutdown,
        progress,
        buckets,
    }
}

impl Running {
    /// Waits until it is caught up and has applied `sequence`.
    pub async fn applied(&mut self, sequence: u64) -> Progress {
        let reached = step(
            "projector progress",
            self.progress
                .wait_for(|p| p.caught_up && p.applied_through >= sequence),
        )
        .await
        .map(|progress| *progress);
        match reached {
            Ok(progress) => progress,
            Err(_) => {
                let ended = step("projector end", &mut self.task).await;
                panic!("the projector stopped before applying {sequence}: {ended:?}")
            }
        }
    }

    /// Stops it and returns how it ended.
    pub async fn stop(self) -> Result<(), ProjectorError> {
        self.shutdown.cancel();
        step("projector shutdown", self.task).await.unwrap()
    }

    /// Waits for it to end by itself (an error).
    pub async fn ended(self) -> Result<(), ProjectorError> {
        step("projector end", self.task).await.unwrap()
    }
}

/// Every live key of every read-model bucket: `(bucket base name, key)` → (value, revision).
pub async fn dump(
    kv: &dyn ReadModelStore,
    buckets: &Buckets,
) -> BTreeMap<(String, String), (serde_json::Value, u64)> {
    let mut all = BTreeMap::new();
    for base in READ_MODEL_BUCKETS {
        let bucket = buckets.by_base(base);
        for key in kv.keys(bucket, None).await.unwrap() {
            let entry = kv.get(bucket, &key).await.unwrap().unwrap();
            let value = serde_json::from_slice(&entry.value).unwrap();
            all.insert((base.to_owned(), key.to_string()), (value, entry.revision));
        }
    }
    all
}

/// `dump` without revisions: what the read models say.
pub async fn values(
    kv: &dyn ReadModelStore,
    buckets: &Buckets,
) -> BTreeMap<(String, String), serde_json::Value> {
    dump(kv, buckets)
        .await
        .into_iter()
        .map(|(k, (value, _))| (k, value))
        .collect()
}

/// One read model, typed.
pub async fn read<M: DeserializeOwned>(
    kv: &dyn ReadModelStore,
    buckets: &Buckets,
    base: &str,
    k: &str,
) -> Option<Versioned<M>> {
    let entry = kv.get(buckets.by_base(base), &key(k)).await.unwrap()?;
    Some(serde_json::from_slice(&entry.value).unwrap())
}

/// The stored checkpoint of projector `name`.
pub async fn checkpoint(kv: &dyn ReadModelStore, buckets: &Buckets, name: &str) -> Option<u64> {
    let k = Key::join(["checkpoint", name]).unwrap();
    let entry = kv.get(buckets.projector(), &k).await.unwrap()?;
    let value: serde_json::Value = serde_json::from_slice(&entry.value).unwrap();
    value["applied_through"].as_u64()
}

fn grant_key(human: &str) -> String {
    format!("grant.{HOST}.{human}.{SERVER}")
}

// ---------------------------------------------------------------------------------------
// The contract
// ---------------------------------------------------------------------------------------

/// A projector replays the history to the head it saw at start, says so, then applies live
/// events as they are appended.
pub async fn the_projector_catches_up_then_follows_live(backend: &mut dyn Backend) {
    let stores = backend.connect().await;
    let history = append_history(stores.log.as_ref()).await;
    let mut running = start(&stores, ProjectorOptions::default());
    let progress = running.applied(history).await;
    assert_eq!(progress.head_at_start, history);
    let kv = stores.kv.as_ref();
    let buckets = running.buckets.clone();

    let ada: Versioned<Grant> = read(kv, &buckets, "grants", &grant_key(ADA)).await.unwrap();
    assert_eq!(ada.live().unwrap().max_trust_level, TrustLevel::Medium);
    let bob: Versioned<Grant> = read(kv, &buckets, "grants", &grant_key(BOB)).await.unwrap();
    assert!(
        bob.live().is_none(),
        "a removed human's grant is a tombstone"
    );
    let server: Versioned<Server> =
        read(kv, &buckets, "servers", &format!("server.{HOST}.{SERVER}"))
            .await
            .unwrap();
    let server = server.live().unwrap();
    assert!(!server.tools["delete_repo"].enabled);
    assert_eq!(server.tools.len(), 3);
    let session: Versioned<Session> = read(
        kv,
        &buckets,
        "sessions",
        &format!("session.{HOST}.{SESSION}"),
    )
    .await
    .unwrap();
    let session = session.live().unwrap().clone();
    assert_eq!(session.last_used_ms, STARTED_AT_MS + 60_000);
    assert!(session.is_live_at(STARTED_AT_MS + 120_000));
    let agent: Versioned<Agent> = read(kv, &buckets, "agents", &format!("agent.{HOST}.{AGENT}"))
        .await
        .unwrap();
    assert_eq!(agent.live().unwrap().caps[SERVER], TrustLevel::Low);

    // Live.
    let writer = backend.connect().await;
    let last = append_revocations(writer.log.as_ref()).await;
    running.applied(last).await;
    let ada: Versioned<Grant> = read(kv, &buckets, "grants", &grant_key(ADA)).await.unwrap();
    assert!(ada.live().is_none(), "revoked");
    let session: Versioned<Session> = read(
        kv,
        &buckets,
        "sessions",
        &format!("session.{HOST}.{SESSION}"),
    )
    .await
    .unwrap();
    assert!(session.live().unwrap().revoked.is_some());
    let agent: Versioned<Agent> = read(kv, &buckets, "agents", &format!("agent.{HOST}.{AGENT}"))
        .await
        .unwrap();
    let agent = agent.live().unwrap();
    assert!(!agent.session_survives_revocations(SERVER, session.live().unwrap().started_sequence));
    assert_eq!(checkpoint(kv, &buckets, "read_models").await, Some(last));
    running.stop().await.unwrap();
}

/// A second projector into fresh buckets, from sequence zero, ends with exactly the same
/// read models as the first.
pub async fn replaying_from_zero_rebuilds_identical_read_models(backend: &mut dyn Backend) {
    let stores = backend.connect().await;
    append_history(stores.log.as_ref()).await;
    let last = append_revocations(stores.log.as_ref()).await;
    let mut first = start(&stores, ProjectorOptions::default());
    first.applied(last).await;
    first.stop().await.unwrap();

    let rebuild_stores = backend.connect().await;
    let mut rebuild = start(&rebuild_stores, options("rebuild", Some("rebuild")));
    assert_ne!(
        rebuild.buckets,
        Buckets::new(None).unwrap(),
        "fresh buckets"
    );
    rebuild.applied(last).await;
    rebuild.stop().await.unwrap();

    let original = values(stores.kv.as_ref(), &Buckets::new(None).unwrap()).await;
    let rebuilt = values(
        rebuild_stores.kv.as_ref(),
        &Buckets::new(Some("rebuild")).unwrap(),
    )
    .await;
    assert!(
        original.len() >= 12,
        "the history fills the read models: {original:#?}"
    );
    assert_eq!(rebuilt, original);
    assert_eq!(
        checkpoint(
            rebuild_stores.kv.as_ref(),
            &Buckets::new(Some("rebuild")).unwrap(),
            "rebuild"
        )
        .await,
        Some(last)
    );
}

/// Restarting a projector from its checkpoint writes nothing; and even when the checkpoint
/// is lost (a crash before it was written), replaying rewrites no key: every event is at or
/// below the `applied_through` of the keys it touches.
pub async fn a_projector_restarted_from_its_checkpoint_changes_nothing_twice(
    backend: &mut dyn Backend,
) {
    let stores = backend.connect().await;
    append_history(stores.log.as_ref()).await;
    let last = append_revocations(stores.log.as_ref()).await;
    let mut running = start(&stores, ProjectorOptions::default());
    running.applied(last).await;
    running.stop().await.unwrap();
    let buckets = Buckets::new(None).unwrap();
    let before = dump(stores.kv.as_ref(), &buckets).await;

    let mut again = start(&stores, ProjectorOptions::default());
    let progress = again.applied(last).await;
    assert_eq!(progress.applied_through, last, "resumed at the checkpoint");
    again.stop().await.unwrap();
    assert_eq!(dump(stores.kv.as_ref(), &buckets).await, before);

    // As if it crashed after writing the read models but before any checkpoint.
    stores
        .kv
        .put(
            buckets.projector(),
            &Key::join(["checkpoint", "read_models"]).unwrap(),
            Bytes::from_static(br#"{"applied_through":0}"#),
            Expect::Any,
        )
        .await
        .unwrap();
    let mut replay = start(&stores, ProjectorOptions::default());
    let progress = replay.applied(last).await;
    assert_eq!(progress.head_at_start, last);
    replay.stop().await.unwrap();
    assert_eq!(
        dump(stores.kv.as_ref(), &buckets).await,
        before,
        "no value and no revision changed"
    );
    assert_eq!(
        checkpoint(stores.kv.as_ref(), &buckets, "read_models").await,
        Some(last)
    );
}

/// Two projectors of the same name, each on its own client, racing over the same buckets
/// while events keep arriving, end with the read models one projector alone builds.
pub async fn two_projectors_racing_produce_the_same_read_models_as_one(backend: &mut dyn Backend) {
    let writer = backend.connect().await;
    append_history(writer.log.as_ref()).await;
    let left_stores = backend.connect().await;
    let right_stores = backend.connect().await;
    let mut left = start(&left_stores, ProjectorOptions::default());
    let mut right = start(&right_stores, ProjectorOptions::default());
    append_churn(writer.log.as_ref(), 15).await;
    let last = append_revocations(writer.log.as_ref()).await;
    left.applied(last).await;
    right.applied(last).await;
    left.stop().await.unwrap();
    right.stop().await.unwrap();

    let solo_stores = backend.connect().await;
    let mut solo = start(&solo_stores, options("solo", Some("solo")));
    solo.applied(last).await;
    solo.stop().await.unwrap();

    let raced = values(writer.kv.as_ref(), &Buckets::new(None).unwrap()).await;
    let alone = values(writer.kv.as_ref(), &Buckets::new(Some("solo")).unwrap()).await;
    assert_eq!(raced, alone);
    assert_eq!(
        checkpoint(
            writer.kv.as_ref(),
            &Buckets::new(None).unwrap(),
            "read_models"
        )
        .await,
        Some(last)
    );
    let ada: Versioned<Grant> = read(
        writer.kv.as_ref(),
        &Buckets::new(None).unwrap(),
        "grants",
        &grant_key(ADA),
    )
    .await
    .unwrap();
    assert!(
        ada.live().is_none(),
        "the revocation is last, whoever wrote it"
    );
}

/// After an abrupt backend restart the read models and the checkpoint are still there, and a
/// new projector continues from the checkpoint without rewriting what it had done.
pub async fn a_backend_restart_keeps_read_models_and_the_checkpoint(backend: &mut dyn Backend) {
    let stores = backend.connect().await;
    let history = append_history(stores.log.as_ref()).await;
    let mut running = start(&stores, ProjectorOptions::default());
    running.applied(history).await;
    running.stop().await.unwrap();
    let buckets = Buckets::new(None).unwrap();
    let before = dump(stores.kv.as_ref(), &buckets).await;
    drop(stores);

    step("restart", backend.restart()).await;

    let stores = backend.connect().await;
    assert_eq!(dump(stores.kv.as_ref(), &buckets).await, before);
    assert_eq!(
        checkpoint(stores.kv.as_ref(), &buckets, "read_models").await,
        Some(history)
    );
    let last = append_revocations(stores.log.as_ref()).await;
    let mut resumed = start(&stores, ProjectorOptions::default());
    let progress = resumed.applied(last).await;
    assert_eq!(progress.head_at_start, last);
    resumed.stop().await.unwrap();
    let after = dump(stores.kv.as_ref(), &buckets).await;
    let host_key = ("hosts".to_owned(), format!("host.{HOST}"));
    assert_eq!(
        after[&host_key], before[&host_key],
        "untouched keys are not rewritten"
    );
    let grant = ("grants".to_owned(), grant_key(ADA));
    assert_eq!(after[&grant].0["deleted"], serde_json::Value::Bool(true));
    assert!(after[&grant].1 > before[&grant].1);
}

/// An event the projector cannot decode stops it with a typed error before its checkpoint,
/// every time it is restarted: it is never skipped, and nothing after it is applied.
pub async fn an_undecodable_event_stops_the_projector(backend: &mut dyn Backend) {
    let stores = backend.connect().await;
    let history = append_history(stores.log.as_ref()).await;
    let bad = append_raw(
        stores.log.as_ref(),
        &grant_subject(ADA),
        NewEvent {
            event_type: "GrantChanged".to_owned(),
            payload: Bytes::from_static(b"\xff\xfe not protobuf"),
        },
    )
    .await;
    let after_bad = append(
        stores.log.as_ref(),
        &subjects::session(HOST, SESSION).unwrap(),
        Body::SessionRevoked(pb::SessionRevoked {
            reason: "after the bad event".to_owned(),
        }),
    )
    .await;
    assert!(bad > history && after_bad > bad);
    let buckets = Buckets::new(None).unwrap();
    for attempt in 0..2 {
        let running = start(&stores, ProjectorOptions::default());
        let err = running.ended().await.unwrap_err();
        assert!(
            matches!(&err, ProjectorError::Decode { source, .. } if source.to_string().contains(&bad.to_string())),
            "attempt {attempt}: {err:?}"
        );
        assert_eq!(
            checkpoint(stores.kv.as_ref(), &buckets, "read_models").await,
            Some(history),
            "attempt {attempt}"
        );
        let session: Versioned<Session> = read(
            stores.kv.as_ref(),
            &buckets,
            "sessions",
            &format!("session.{HOST}.{SESSION}"),
        )
        .await
        .unwrap();
        assert!(
            session.live().unwrap().revoked.is_none(),
            "nothing after it applied"
        );
    }
}
