//! Unit tests of what the shared contract suite cannot see: the single-process lock, the schema
//! version, rows that cannot be read back, batch boundaries, lagging watchers, and closing.
//!
//! Must not: share a store file between tests (each takes its own temp dir) or repeat what
//! `tests/contract` already proves.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is the report

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use portcullis_store::{
    Bucket, CommandId, EventLog, Expect, Key, KvError, LogError, MAX_VALUE_BYTES, NewEvent,
    ReadModelStore, Subject, SubjectFilter, Version, WatchEvent,
};

use crate::{OpenError, SCHEMA_VERSION, SqliteStore};

#[test]
fn a_second_open_of_an_open_store_is_refused_as_locked() {
    let (_dir, path) = temp_store_path();
    let _first = SqliteStore::open(&path).unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    match &err {
        OpenError::Locked { holder, .. } => assert_eq!(*holder, Some(std::process::id())),
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );
}

#[test]
fn dropping_every_clone_releases_the_lock() {
    let (_dir, path) = temp_store_path();
    let store = SqliteStore::open(&path).unwrap();
    let clone = store.clone();
    drop(store);
    assert!(matches!(
        SqliteStore::open(&path),
        Err(OpenError::Locked { .. })
    ));
    drop(clone);
    SqliteStore::open(&path).unwrap();
}

#[test]
fn a_file_from_a_newer_schema_is_refused() {
    let (_dir, path) = temp_store_path();
    drop(SqliteStore::open(&path).unwrap());
    raw(&path)
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    match SqliteStore::open(&path) {
        Err(OpenError::SchemaTooNew {
            found, supported, ..
        }) => assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION)),
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[test]
fn an_audit_journal_from_a_newer_build_is_refused_naming_its_file() {
    let (_dir, path) = temp_store_path();
    drop(SqliteStore::open(&path).unwrap());
    let journal = crate::schema::journal_path(&path);
    raw(&journal)
        .pragma_update(None, "user_version", 2)
        .unwrap();
    match SqliteStore::open(&path) {
        Err(OpenError::SchemaTooNew {
            path: refused,
            found,
            supported,
        }) => assert_eq!((refused, found, supported), (journal.clone(), 2, 1)),
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    // Refused before anything was written: the journal still says what it said.
    let version: i64 = raw(&journal)
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_cannot_be_read_back_is_an_error_not_a_gap() {
    let (_dir, path) = temp_store_path();
    let store = open(&path).await;
    append(&store, &subject("h1", "grant", "g1"), "c1").await;
    drop(store);
    raw(&path)
        .execute(
            "INSERT INTO events (subject, event_type, command_id, recorded_at_ms, payload)
             VALUES ('not-a-subject', 'test.v1.Bad', 'c2', 0, x'')",
            [],
        )
        .unwrap();
    append_raw_good_event(&path, "c3");

    let store = open(&path).await;
    let mut stream = store.subscribe(&SubjectFilter::all(), 1).await.unwrap();
    assert_eq!(next(&mut stream).await.unwrap().sequence, 1);
    match next(&mut stream).await {
        Err(LogError::Corrupt { sequence: 2, .. }) => {}
        other => panic!("expected record 2 to be corrupt, got {other:?}"),
    }
    assert!(
        stream.next().await.is_none(),
        "the stream ends after the error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_cannot_be_read_back_is_an_error() {
    let (_dir, path) = temp_store_path();
    let store = open(&path).await;
    let b = bucket("models");
    store.ensure_bucket(&b).await.unwrap();
    drop(store);
    raw(&path)
        .execute(
            "INSERT INTO kv (bucket, key, value, revision) VALUES ('models', 'a..b', x'00', 1)",
            [],
        )
        .unwrap();

    let store = open(&path).await;
    let err = store.keys(&b, None).await.unwrap_err();
    assert!(matches!(err, KvError::Corrupt { .. }), "{err:?}");
    // The replay streams the bucket, so the bad row ends the watch when it is reached:
    // nothing is skipped and the watch never reports being caught up.
    let mut stream = store.watch(&b).await.expect("the watch starts");
    let err = match stream.next().await {
        Some(Err(err)) => err,
        other => panic!("expected the replay to fail, got {other:?}"),
    };
    assert!(matches!(err, KvError::Corrupt { .. }), "{err:?}");
    assert!(
        stream.next().await.is_none(),
        "the watch ends after the error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_crosses_batch_boundaries_without_gaps_or_repeats() {
    let (_dir, path) = temp_store_path();
    let store = open(&path).await;
    // Interleave two hosts so every batch holds rows the filter drops.
    for i in 0..10 {
        append(
            &store,
            &subject("h1", "grant", &format!("g{i}")),
            &format!("a{i}"),
        )
        .await;
        append(
            &store,
            &subject("h2", "grant", &format!("g{i}")),
            &format!("b{i}"),
        )
        .await;
    }
    let mut stream = store
        .subscribe(&SubjectFilter::host("h1").unwrap(), 1)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(next(&mut stream).await.unwrap().command_id.to_string());
    }
    let expected: Vec<String> = (0..10).map(|i| format!("a{i}")).collect();
    assert_eq!(ids, expected);

    append(&store, &subject("h2", "grant", "late"), "b-late").await;
    append(&store, &subject("h1", "grant", "late"), "a-late").await;
    let live = next(&mut stream).await.unwrap();
    assert_eq!(live.command_id.as_str(), "a-late");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_ends_when_the_store_closes() {
    let (_dir, path) = temp_store_path();
    let store = open(&path).await;
    let mut stream = store.subscribe(&SubjectFilter::all(), 1).await.unwrap();
    drop(store);
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
    assert!(matches!(end, Ok(None)), "{end:?}");
    // The stream did not keep the store open.
    drop(SqliteStore::open(&path).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_falls_behind_gets_an_error_then_the_end() {
    let (_dir, path) = temp_store_path();
    let store = open(&path).await;
    let b = bucket("models");
    store.ensure_bucket(&b).await.unwrap();
    let mut watch = store.watch(&b).await.unwrap();
    assert_eq!(watch.next().await.unwrap().unwrap(), WatchEvent::CaughtUp);
    for i in 0..20 {
        store
            .put(&b, &key("k"), Bytes::from(format!("v{i}")), Expect::Any)
            .await
            .unwrap();
    }
    let first = watch.next().await.unwrap();
    assert!(
        matches!(first, Err(KvError::Unavailable { .. })),
        "{first:?}"
    );
    assert!(watch.next().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_spanning_pages_is_the_snapshot_then_the_changes_after_it() {
    let (_dir, path) = temp_store_path();
    let store = open(&path).await;
    let b = bucket("models");
    store.ensure_bucket(&b).await.unwrap();
    // More entries than fit in several replay pages (3 under test).
    for i in 0..10 {
        store
            .put(
                &b,
                &key(&format!("k{i}")),
                Bytes::from(format!("v{i}")),
                Expect::Any,
            )
            .await
            .unwrap();
    }
    let mut watch = store.watch(&b).await.unwrap();
    // Written while the replay is in progress (the watcher has read nothing yet): after the
    // snapshot, so they come once each, after `CaughtUp`.
    store
        .put(&b, &key("k0"), Bytes::from("v0 again"), Expect::Any)
        .await
        .unwrap();
    store.delete(&b, &key("k9"), Expect::Any).await.unwrap();
    let mut replayed = Vec::new();
    loop {
        match watch.next().await.unwrap().unwrap() {
            WatchEvent::Put(entry) => replayed.push((entry.key.to_string(), entry.value)),
            WatchEvent::CaughtUp => break,
            other @ WatchEvent::Deleted { .. } => panic!("no delete in a replay: {other:?}"),
        }
    }
    let expected: Vec<(String, Bytes)> = (0..10)
        .map(|i| (format!("k{i}"), Bytes::from(format!("v{i}"))))
        .collect();
    assert_eq!(
        replayed, expected,
        "the snapshot, in revision order, once each"
    );
    match watch.next().await.unwrap().unwrap() {
        WatchEvent::Put(entry) => assert_eq!(
            (entry.key.to_string(), entry.value),
            ("k0".to_owned(), Bytes::from("v0 again"))
        ),
        other => panic!("expected the later put, got {other:?}"),
    }
    assert!(matches!(
        watch.next().await.unwrap().unwrap(),
        WatchEvent::Deleted { key: k, .. } if k == key("k9")
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_watch_during_its_replay_stops_the_replay() {
    let (_dir, path) = temp_store_path();
    let store = open(&path).await;
    let b = bucket("models");
    store.ensure_bucket(&b).await.unwrap();
    for i in 0..30 {
        store
            .put(&b, &key(&format!("k{i}")), Bytes::from("v"), Expect::Any)
            .await
            .unwrap();
    }
    let mut watch = store.watch(&b).await.unwrap();
    assert!(matches!(watch.next().await, Some(Ok(WatchEvent::Put(_)))));
    drop(watch);
    drop(store);
    // The replaying thread let go of the store: it can be opened again at once.
    let mut reopened = None;
    for _ in 0..100 {
        match SqliteStore::open(&path) {
            Ok(store) => {
                reopened = Some(store);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(
        reopened.is_some(),
        "the store stayed locked by a replay nobody reads"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_underscore_in_a_prefix_is_not_a_wildcard() {
    let (_dir, path) = temp_store_path();
    let store = open(&path).await;
    let b = bucket("models");
    store.ensure_bucket(&b).await.unwrap();
    for k in ["a_b.x", "axb.y", "a_b", "a_bc.z"] {
        store
            .put(&b, &key(k), Bytes::from("v"), Expect::Any)
            .await
            .unwrap();
    }
    let keys = store.keys(&b, Some(&key("a_b"))).await.unwrap();
    assert_eq!(keys, [key("a_b"), key("a_b.x")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_expecting_absence_succeeds_only_when_the_key_is_absent() {
    let (_dir, path) = temp_store_path();
    let store = open(&path).await;
    let b = bucket("models");
    store.ensure_bucket(&b).await.unwrap();
    store.delete(&b, &key("k"), Expect::Absent).await.unwrap();
    let revision = store
        .put(&b, &key("k"), Bytes::from("v"), Expect::Any)
        .await
        .unwrap();
    let err = store
        .delete(&b, &key("k"), Expect::Absent)
        .await
        .unwrap_err();
    assert!(
        matches!(err, KvError::Conflict { actual: Some(r), .. } if r == revision),
        "{err:?}"
    );
    let err = store
        .delete(&b, &key("gone"), Expect::Revision(revision))
        .await
        .unwrap_err();
    assert!(
        matches!(err, KvError::Conflict { actual: None, .. }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_over_the_limit_is_too_large_and_not_written() {
    let (_dir, path) = temp_store_path();
    let store = open(&path).await;
    let b = bucket("models");
    store.ensure_bucket(&b).await.unwrap();
    let value = Bytes::from(vec![0; MAX_VALUE_BYTES + 1]);
    let err = store
        .put(&b, &key("k"), value, Expect::Any)
        .await
        .unwrap_err();
    assert!(matches!(err, KvError::TooLarge { .. }), "{err:?}");
    assert_eq!(store.get(&b, &key("k")).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequence_is_never_reused_even_after_its_row_is_gone() {
    let (_dir, path) = temp_store_path();
    let store = open(&path).await;
    append(&store, &subject("h1", "grant", "g1"), "c1").await;
    append(&store, &subject("h1", "grant", "g2"), "c2").await;
    drop(store);
    raw(&path)
        .execute("DELETE FROM events WHERE seq = 2", [])
        .unwrap();
    let store = open(&path).await;
    let appended = append(&store, &subject("h1", "grant", "g3"), "c3").await;
    assert_eq!(appended, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_is_checkpointed_beside_the_writer_and_commits_checkpoint_only_as_a_backstop() {
    let (_dir, path) = temp_store_path();
    let store = open(&path).await;
    let autocheckpoint: i64 = store
        .inner
        .lock_writer()
        .conn
        .pragma_query_value(None, "wal_autocheckpoint", |row| row.get(0))
        .unwrap();
    assert_eq!(autocheckpoint, crate::checkpoint::BACKSTOP_PAGES);
    // Far fewer pages than the backstop: only the checkpoint thread copies them.
    for n in 0..20 {
        append(
            &store,
            &subject("h1", "grant", &format!("g{n}")),
            &format!("c{n}"),
        )
        .await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.inner.checkpointer.backfills() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint copied the WAL within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------

fn temp_store_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite");
    (dir, path)
}

async fn open(path: &Path) -> SqliteStore {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || SqliteStore::open(&path))
        .await
        .unwrap()
        .unwrap()
}

/// A plain connection to a closed store, to plant what a bug or a hand edit could leave.
fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

fn append_raw_good_event(path: &Path, command_id: &str) {
    raw(path)
        .execute(
            "INSERT INTO events (subject, event_type, command_id, recorded_at_ms, payload)
             VALUES ('evt.h1.grant.g9', 'test.v1.Good', ?1, 0, x'')",
            [command_id],
        )
        .unwrap();
}

/// Appends a new aggregate's first event; returns its sequence.
async fn append(store: &SqliteStore, subject: &Subject, command_id: &str) -> u64 {
    let event = NewEvent {
        event_type: "test.v1.Labelled".to_owned(),
        payload: Bytes::from(command_id.to_owned()),
    };
    let command_id = CommandId::parse(command_id).unwrap();
    let version = store.load(subject).await.unwrap().version;
    let appended = store
        .append(subject, version, &command_id, event)
        .await
        .unwrap();
    assert_eq!(version, Version::NONE);
    appended.sequence
}

async fn next(
    stream: &mut portcullis_store::EventStream,
) -> Result<portcullis_store::RecordedEvent, LogError> {
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("an event within 5 s")
        .expect("the stream goes on")
}

fn subject(host: &str, kind: &str, id: &str) -> Subject {
    Subject::new(host, kind, id).unwrap()
}

fn bucket(name: &str) -> Bucket {
    Bucket::new(name).unwrap()
}

fn key(name: &str) -> Key {
    Key::new(name).unwrap()
}
