//! Tests of command execution against the embedded store.

use std::sync::Arc;

use portcullis_domain::organization::{Organization, OrganizationCommand, OrganizationRejected};
use portcullis_proto::decode_event;
use portcullis_proto::events::v1::actor;
use portcullis_store::{CommandId, EventLog, Subject};
use portcullis_store_sqlite::SqliteStore;
use tokio::sync::Mutex;

use super::*;

fn open() -> (tempfile::TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SqliteStore::open(&dir.path().join("p.db")).expect("open"));
    (dir, store)
}

fn id(s: &str) -> CommandId {
    CommandId::parse(s).expect("valid")
}

fn org() -> Subject {
    portcullis_proto::subjects::organization("O1").expect("valid")
}

fn create() -> OrganizationCommand {
    OrganizationCommand::Create {
        org_id: "O1".into(),
        name: "Acme".into(),
    }
}

fn context() -> Context {
    Context {
        now_ms: 1_800_000_000_000,
        actor: actor::Kind::AdminTokenId("T1".into()),
        correlation_id: "req-1".into(),
    }
}

#[tokio::test]
async fn a_command_appends_its_event_with_metadata_and_returns_the_new_state() {
    let (_dir, store) = open();
    let done = execute::<Organization>(store.as_ref(), &context(), &org(), &id("a"), &create())
        .await
        .expect("executed");
    assert!(done.appended);
    assert!(matches!(done.state, Organization::Live { ref name, .. } if name == "Acme"));
    let loaded = store.load(&org()).await.expect("load");
    assert_eq!(loaded.version, done.version);
    let event = decode_event(&loaded.events[0]).expect("decodes");
    let meta = event.meta.expect("meta");
    assert_eq!(meta.occurred_at_ms, 1_800_000_000_000);
    assert_eq!(meta.correlation_id, "req-1");
}

#[tokio::test]
async fn a_retried_command_id_appends_nothing_twice() {
    let (_dir, store) = open();
    execute::<Organization>(store.as_ref(), &context(), &org(), &id("a"), &create())
        .await
        .expect("first");
    let again = execute::<Organization>(store.as_ref(), &context(), &org(), &id("a"), &create())
        .await
        .expect("a retry is not a refusal");
    assert!(!again.appended);
    assert_eq!(store.load(&org()).await.expect("load").events.len(), 1);
}

#[tokio::test]
async fn a_refusal_is_a_rejection_and_writes_nothing() {
    let (_dir, store) = open();
    let command = OrganizationCommand::AssignDefaultHost {
        host_id: "h1".into(),
    };
    let err = execute::<Organization>(store.as_ref(), &context(), &org(), &id("a"), &command)
        .await
        .expect_err("refused");
    assert!(matches!(
        err,
        ExecuteError::Rejected(OrganizationRejected::NotFound)
    ));
    assert_eq!(store.head().await.expect("head"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_commands_are_each_decided_on_the_latest_state() {
    let (_dir, store) = open();
    // Eight writers race to create the same organization: one creates it, and each of the
    // others, having lost the append, decides again on the new state and is refused.
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                execute::<Organization>(
                    store.as_ref(),
                    &context(),
                    &org(),
                    &id(&format!("w{i}")),
                    &create(),
                )
                .await
            })
        })
        .collect();
    let mut created = 0;
    let mut refused = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(done) => {
                assert!(done.appended);
                created += 1;
            }
            Err(ExecuteError::Rejected(OrganizationRejected::AlreadyExists)) => refused += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((created, refused), (1, 7));
    assert_eq!(store.load(&org()).await.expect("load").events.len(), 1);
}

/// A log whose first `load` shows the subject as it was before a racing twin appended.
struct LoadsStaleOnce {
    store: Arc<SqliteStore>,
    stale: Mutex<Option<portcullis_store::Loaded>>,
}

#[async_trait::async_trait]
impl EventLog for LoadsStaleOnce {
    async fn append(
        &self,
        subject: &Subject,
        expected: portcullis_store::Version,
        command_id: &CommandId,
        event: portcullis_store::NewEvent,
    ) -> Result<portcullis_store::Appended, portcullis_store::AppendError> {
        self.store
            .append(subject, expected, command_id, event)
            .await
    }

    async fn load(
        &self,
        subject: &Subject,
    ) -> Result<portcullis_store::Loaded, portcullis_store::LogError> {
        if let Some(stale) = self.stale.lock().await.take() {
            return Ok(stale);
        }
        self.store.load(subject).await
    }

    async fn head(&self) -> Result<u64, portcullis_store::LogError> {
        self.store.head().await
    }

    async fn subscribe(
        &self,
        filter: &portcullis_store::SubjectFilter,
        from: u64,
    ) -> Result<portcullis_store::EventStream, portcullis_store::LogError> {
        self.store.subscribe(filter, from).await
    }
}

#[tokio::test]
async fn a_twin_that_recorded_the_same_command_first_decides_the_answer() {
    let (_dir, store) = open();
    let before = store.load(&org()).await.expect("load");
    // The twin (same command id, another replica) decided first, and named it "Acme".
    execute::<Organization>(store.as_ref(), &context(), &org(), &id("same"), &create())
        .await
        .expect("twin");
    // This replica loaded before the twin appended, decides "Globex", and its append is the
    // duplicate of the twin's.
    let log = LoadsStaleOnce {
        store: store.clone(),
        stale: Mutex::new(Some(before)),
    };
    let mine = OrganizationCommand::Create {
        org_id: "O1".into(),
        name: "Globex".into(),
    };
    let done = execute::<Organization>(&log, &context(), &org(), &id("same"), &mine)
        .await
        .expect("a twin's record is not a failure");
    assert!(!done.appended);
    assert!(
        matches!(done.state, Organization::Live { ref name, .. } if name == "Acme"),
        "the recorded state, not this replica's own decision: {:?}",
        done.state
    );
    assert_eq!(store.load(&org()).await.expect("load").events.len(), 1);
}
