//! Tests of the read-model replica against the embedded store.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use portcullis_store::{Bucket, Expect, Key, ReadModelStore};
use portcullis_store_sqlite::SqliteStore;
use tokio_util::sync::CancellationToken;

use super::*;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    bucket: Bucket,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SqliteStore::open(&dir.path().join("p.db")).expect("open store"));
    let bucket = Bucket::new("sessions").expect("valid");
    store.ensure_bucket(&bucket).await.expect("bucket");
    Fixture {
        _dir: dir,
        store,
        bucket,
    }
}

fn key(k: &str) -> Key {
    Key::new(k).expect("valid key")
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test]
async fn a_replica_is_stale_until_caught_up_then_mirrors_every_change() {
    let f = fixture().await;
    f.store
        .put(&f.bucket, &key("s.1"), Bytes::from("a"), Expect::Any)
        .await
        .expect("put");
    let shutdown = CancellationToken::new();
    let replica = Replica::start(
        ReplicaConfig::new(vec![f.bucket.clone()], Duration::from_secs(5)),
        f.store.clone(),
        f.store.clone(),
        shutdown.clone(),
    );
    eventually("caught up", || replica.freshness().is_ok()).await;
    assert_eq!(
        replica.get(&f.bucket, &key("s.1")).map(|c| c.value.clone()),
        Some(Bytes::from("a"))
    );

    f.store
        .put(&f.bucket, &key("s.2"), Bytes::from("b"), Expect::Any)
        .await
        .expect("put");
    f.store
        .delete(&f.bucket, &key("s.1"), Expect::Any)
        .await
        .expect("delete");
    eventually("delete applied", || {
        replica.get(&f.bucket, &key("s.1")).is_none()
    })
    .await;
    eventually("put applied", || {
        replica.get(&f.bucket, &key("s.2")).is_some()
    })
    .await;
    assert_eq!(replica.len(&f.bucket), 1);
    shutdown.cancel();
}

#[tokio::test]
async fn a_replica_that_hears_nothing_goes_stale() {
    let f = fixture().await;
    let shutdown = CancellationToken::new();
    let config = ReplicaConfig {
        buckets: vec![f.bucket.clone()],
        max_staleness: Duration::from_millis(300),
        // Never probe within the test: silence must make it stale.
        probe_interval: Duration::from_secs(3600),
    };
    let replica = Replica::start(config, f.store.clone(), f.store.clone(), shutdown.clone());
    eventually("caught up", || replica.freshness().is_ok()).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        matches!(replica.freshness(), Err(Staleness::Silent(..))),
        "{:?}",
        replica.freshness()
    );
    shutdown.cancel();
}

#[test]
fn an_older_revision_never_replaces_a_newer_value_or_delete() {
    let state = BucketState {
        cache: moka::sync::Cache::builder().build(),
        caught_up: AtomicBool::new(true),
        watching: AtomicBool::new(true),
        down_since_ms: AtomicU64::new(0),
        applied: AtomicU64::new(0),
    };
    let live = |v: &str, revision| {
        Slot::Live(Arc::new(Cached {
            value: Bytes::from(v.to_owned()),
            revision,
        }))
    };
    upsert(&state, key("k"), live("new", 5));
    upsert(&state, key("k"), live("old", 4));
    assert_eq!(state.cache.get(&key("k")), Some(live("new", 5)));
    upsert(&state, key("k"), Slot::Deleted(6));
    upsert(&state, key("k"), live("older", 5));
    assert_eq!(state.cache.get(&key("k")), Some(Slot::Deleted(6)));
    assert_eq!(state.applied.load(Ordering::Acquire), 6);
}
