//! Tests of command execution against the embedded store, with a toy counter aggregate.

use std::sync::Arc;

use bytes::Bytes;
use portcullis_store::{CommandId, EventLog, NewEvent, RecordedEvent, Subject};
use portcullis_store_sqlite::SqliteStore;

use super::*;

/// A counter that refuses to go above a limit.
#[derive(Debug, Default, PartialEq)]
struct Counter(u32);

#[derive(Debug, PartialEq)]
struct Incremented;

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("counter is full")]
struct Full;

enum CounterCommand {
    Increment { limit: u32 },
    EnsureAtLeast(u32),
}

impl Aggregate for Counter {
    type Event = Incremented;
    type Command = CounterCommand;
    type Rejection = Full;

    fn evolve(self, _: &Incremented) -> Self {
        Counter(self.0 + 1)
    }

    fn decide(&self, command: &CounterCommand) -> Result<Decision<Incremented>, Full> {
        match command {
            CounterCommand::Increment { limit } if self.0 >= *limit => Err(Full),
            CounterCommand::Increment { .. } => Ok(Decision::Append(Incremented)),
            CounterCommand::EnsureAtLeast(n) if self.0 >= *n => Ok(Decision::Unchanged),
            CounterCommand::EnsureAtLeast(_) => Ok(Decision::Append(Incremented)),
        }
    }
}

struct Codec;

#[derive(Debug, thiserror::Error)]
#[error("not an increment")]
struct NotAnIncrement;

impl EventCodec for Codec {
    type Event = Incremented;
    type DecodeError = NotAnIncrement;
    fn encode(&self, _: &Incremented) -> NewEvent {
        NewEvent {
            event_type: "test.Incremented".to_owned(),
            payload: Bytes::from_static(b"+1"),
        }
    }
    fn decode(&self, record: &RecordedEvent) -> Result<Incremented, NotAnIncrement> {
        (record.payload.as_ref() == b"+1")
            .then_some(Incremented)
            .ok_or(NotAnIncrement)
    }
}

fn open() -> (tempfile::TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SqliteStore::open(&dir.path().join("p.db")).expect("open"));
    (dir, store)
}

fn id(s: &str) -> CommandId {
    CommandId::parse(s).expect("valid")
}

#[tokio::test]
async fn a_command_appends_its_event_and_returns_the_new_state() {
    let (_dir, store) = open();
    let subject = Subject::new("h1", "counter", "c1").expect("valid");
    let done = execute::<Counter, _>(
        store.as_ref(),
        &Codec,
        &subject,
        &id("a"),
        &CounterCommand::Increment { limit: 5 },
    )
    .await
    .expect("executed");
    assert_eq!(done.state, Counter(1));
    assert!(done.appended);
    assert_eq!(
        store.load(&subject).await.expect("load").version,
        done.version
    );
}

#[tokio::test]
async fn a_retried_command_id_appends_nothing_twice() {
    let (_dir, store) = open();
    let subject = Subject::new("h1", "counter", "c1").expect("valid");
    let command = CounterCommand::Increment { limit: 5 };
    execute::<Counter, _>(store.as_ref(), &Codec, &subject, &id("a"), &command)
        .await
        .expect("first");
    let again = execute::<Counter, _>(store.as_ref(), &Codec, &subject, &id("a"), &command)
        .await
        .expect("retry");
    assert!(!again.appended);
    assert_eq!(again.state, Counter(1));
    assert_eq!(store.load(&subject).await.expect("load").events.len(), 1);
}

#[tokio::test]
async fn a_refusal_is_a_rejection_and_writes_nothing() {
    let (_dir, store) = open();
    let subject = Subject::new("h1", "counter", "c1").expect("valid");
    let err = execute::<Counter, _>(
        store.as_ref(),
        &Codec,
        &subject,
        &id("a"),
        &CounterCommand::Increment { limit: 0 },
    )
    .await
    .expect_err("refused");
    assert!(matches!(err, ExecuteError::Rejected(Full)));
    assert_eq!(store.head().await.expect("head"), 0);
}

#[tokio::test]
async fn an_idempotent_command_on_a_state_that_holds_appends_nothing() {
    let (_dir, store) = open();
    let subject = Subject::new("h1", "counter", "c1").expect("valid");
    let first = execute::<Counter, _>(
        store.as_ref(),
        &Codec,
        &subject,
        &id("a"),
        &CounterCommand::EnsureAtLeast(1),
    )
    .await
    .expect("first");
    assert!(first.appended);
    let second = execute::<Counter, _>(
        store.as_ref(),
        &Codec,
        &subject,
        &id("b"),
        &CounterCommand::EnsureAtLeast(1),
    )
    .await
    .expect("second");
    assert!(!second.appended);
    assert_eq!(store.load(&subject).await.expect("load").events.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_commands_are_each_decided_on_the_latest_state() {
    let (_dir, store) = open();
    let subject = Subject::new("h1", "counter", "c1").expect("valid");
    // Eight writers race to increment a counter limited to 4: exactly four succeed, four are
    // refused by the domain after seeing the others' events — none is lost or doubled. (A
    // writer loses at most 4 races, fewer than the attempts it has, so none gives up.)
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            let subject = subject.clone();
            tokio::spawn(async move {
                execute::<Counter, _>(
                    store.as_ref(),
                    &Codec,
                    &subject,
                    &id(&format!("w{i}")),
                    &CounterCommand::Increment { limit: 4 },
                )
                .await
            })
        })
        .collect();
    let mut ok = 0;
    let mut full = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(done) => {
                assert!(done.appended);
                ok += 1;
            }
            Err(ExecuteError::Rejected(Full)) => full += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((ok, full), (4, 4));
    assert_eq!(store.load(&subject).await.expect("load").events.len(), 4);
}
