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
        Some(Value::Json(Arc::from(&b"a"[..])))
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
        projection: None,
        pending_changes: None,
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

#[tokio::test]
async fn a_request_waits_for_a_stale_replica_to_recover_but_no_longer_than_asked() {
    let f = fixture().await;
    let shutdown = CancellationToken::new();
    let config = ReplicaConfig {
        buckets: vec![f.bucket.clone()],
        max_staleness: Duration::from_millis(300),
        // Never probe: only a delivered change counts as word from the store.
        probe_interval: Duration::from_secs(3600),
        projection: None,
        pending_changes: None,
    };
    let replica = Replica::start(config, f.store.clone(), f.store.clone(), shutdown.clone());
    eventually("caught up", || replica.freshness().is_ok()).await;
    assert_eq!(replica.wait_fresh(Duration::ZERO).await, Ok(()));
    tokio::time::sleep(Duration::from_millis(400)).await;

    // Stale and nothing changes: refused once the wait is over, not before.
    let started = std::time::Instant::now();
    let refused = replica.wait_fresh(Duration::from_millis(150)).await;
    assert!(matches!(refused, Err(Staleness::Silent(..))), "{refused:?}");
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert!(matches!(
        replica.wait_fresh(Duration::ZERO).await,
        Err(Staleness::Silent(..))
    ));

    // Word from the store while a request waits: it goes on as soon as that arrives.
    let store = f.store.clone();
    let bucket = f.bucket.clone();
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        store
            .put(&bucket, &key("s.1"), Bytes::from("v"), Expect::Any)
            .await
            .expect("put");
    });
    let started = std::time::Instant::now();
    assert_eq!(replica.wait_fresh(Duration::from_secs(10)).await, Ok(()));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(200), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    writer.await.expect("writer");
    shutdown.cancel();
}

#[test]
fn an_older_revision_never_replaces_a_newer_value_or_delete() {
    let state = BucketState {
        cache: DashMap::new(),
        caught_up: AtomicBool::new(true),
        watching: AtomicBool::new(true),
        down_since_ms: AtomicU64::new(0),
        applied: AtomicU64::new(0),
        target: AtomicU64::new(0),
        target_seen_ms: AtomicU64::new(0),
        watch_opened_ms: AtomicU64::new(0),
        rewatch: tokio::sync::Notify::new(),
        unconfirmed_since_ms: AtomicU64::new(0),
    };
    let live = |v: &str, revision| {
        Slot::Live(Cached {
            value: Value::Json(Arc::from(v.as_bytes())),
            revision,
        })
    };
    upsert(&state, key("k"), live("new", 5));
    upsert(&state, key("k"), live("old", 4));
    let slot = |k: &str| state.cache.get(k).map(|slot| slot.value().clone());
    assert_eq!(slot("k"), Some(live("new", 5)));
    upsert(&state, key("k"), Slot::Deleted(6));
    upsert(&state, key("k"), live("older", 5));
    assert_eq!(slot("k"), Some(Slot::Deleted(6)));
    assert_eq!(state.applied.load(Ordering::Acquire), 6);
}

/// What a `StallsFirstWatch` store's watches after the first do.
enum Later {
    /// Work normally.
    Work,
    /// Deliver nothing at all.
    Stall,
    /// Leave this key out of their initial replay, as a consumer served by a node still
    /// catching up can.
    Omit(Key),
}

/// A store whose first watch delivers the initial state and then nothing more, without an
/// error (as a JetStream consumer on a dead node can); later watches do as `later` says.
/// Everything else answers from the whole store.
struct StallsFirstWatch {
    inner: Arc<SqliteStore>,
    watches: AtomicU64,
    later: Later,
    /// While set, reads of single keys fail (a leader election).
    fail_gets: AtomicBool,
}

#[async_trait::async_trait]
impl ReadModelStore for StallsFirstWatch {
    async fn ensure_bucket(&self, bucket: &Bucket) -> Result<(), portcullis_store::KvError> {
        self.inner.ensure_bucket(bucket).await
    }
    async fn get(
        &self,
        bucket: &Bucket,
        key: &Key,
    ) -> Result<Option<portcullis_store::Entry>, portcullis_store::KvError> {
        if self.fail_gets.load(Ordering::SeqCst) {
            return Err(portcullis_store::KvError::Unavailable {
                context: format!("reading {bucket}/{key}"),
                source: "no leader".into(),
            });
        }
        self.inner.get(bucket, key).await
    }
    async fn put(
        &self,
        bucket: &Bucket,
        key: &Key,
        value: Bytes,
        expect: Expect,
    ) -> Result<u64, portcullis_store::KvError> {
        self.inner.put(bucket, key, value, expect).await
    }
    async fn delete(
        &self,
        bucket: &Bucket,
        key: &Key,
        expect: Expect,
    ) -> Result<(), portcullis_store::KvError> {
        self.inner.delete(bucket, key, expect).await
    }
    async fn keys(
        &self,
        bucket: &Bucket,
        prefix: Option<&Key>,
    ) -> Result<Vec<Key>, portcullis_store::KvError> {
        self.inner.keys(bucket, prefix).await
    }
    async fn watch(
        &self,
        bucket: &Bucket,
    ) -> Result<portcullis_store::WatchStream, portcullis_store::KvError> {
        let stream = self.inner.watch(bucket).await?;
        let mut done = false;
        if self.watches.fetch_add(1, Ordering::SeqCst) > 0 {
            return match &self.later {
                Later::Work => Ok(stream),
                Later::Stall => Ok(Box::pin(futures::stream::pending())),
                Later::Omit(omit) => {
                    let omit = omit.clone();
                    Ok(Box::pin(stream.filter(move |event| {
                        let skip = !done
                            && matches!(event, Ok(WatchEvent::Put(entry)) if entry.key == omit);
                        done |= matches!(event, Ok(WatchEvent::CaughtUp));
                        futures::future::ready(!skip)
                    })))
                }
            };
        }
        // Up to and including CaughtUp, then silence.
        let initial = stream.take_while(move |event| {
            let go = !done;
            done |= matches!(event, Ok(WatchEvent::CaughtUp));
            futures::future::ready(go)
        });
        Ok(Box::pin(initial.chain(futures::stream::pending())))
    }
    async fn last_revision(&self, bucket: &Bucket) -> Result<u64, portcullis_store::KvError> {
        self.inner.last_revision(bucket).await
    }
}

#[tokio::test]
async fn a_watch_that_stalls_without_an_error_is_reopened_and_stale_in_between() {
    let f = fixture().await;
    let kv = Arc::new(StallsFirstWatch {
        inner: f.store.clone(),
        watches: AtomicU64::new(0),
        later: Later::Work,
        fail_gets: AtomicBool::new(false),
    });
    let shutdown = CancellationToken::new();
    let config = ReplicaConfig {
        buckets: vec![f.bucket.clone()],
        max_staleness: Duration::from_millis(600),
        probe_interval: Duration::from_millis(50),
        projection: None,
        pending_changes: None,
    };
    let replica = Replica::start(config, kv.clone(), f.store.clone(), shutdown.clone());
    eventually("caught up", || replica.freshness().is_ok()).await;
    // A change the stalled watch never delivers: the probe sees it in the store.
    f.store
        .put(&f.bucket, &key("s.1"), Bytes::from("revoked"), Expect::Any)
        .await
        .expect("put");
    // Within the bound the watch is re-opened and the change arrives.
    eventually("the change arrives through a new watch", || {
        replica.get(&f.bucket, &key("s.1")).is_some()
    })
    .await;
    assert_eq!(kv.watches.load(Ordering::SeqCst), 2, "re-watched once");
    assert!(replica.freshness().is_ok(), "{:?}", replica.freshness());
    shutdown.cancel();
}

#[tokio::test]
async fn a_replica_whose_watch_stays_behind_fails_closed() {
    let f = fixture().await;
    let shutdown = CancellationToken::new();
    let kv = Arc::new(StallsFirstWatch {
        inner: f.store.clone(),
        watches: AtomicU64::new(0),
        later: Later::Stall,
        fail_gets: AtomicBool::new(false),
    });
    let config = ReplicaConfig {
        buckets: vec![f.bucket.clone()],
        max_staleness: Duration::from_millis(400),
        probe_interval: Duration::from_millis(40),
        projection: None,
        pending_changes: None,
    };
    let replica = Replica::start(config, kv.clone(), f.store.clone(), shutdown.clone());
    eventually("caught up", || replica.freshness().is_ok()).await;
    f.store
        .put(&f.bucket, &key("s.1"), Bytes::from("v"), Expect::Any)
        .await
        .expect("put");
    // The first watch stalls and new ones deliver nothing: the change never arrives, and the
    // replica must say so.
    eventually("stale: behind the store", || {
        matches!(replica.freshness(), Err(Staleness::Behind(..)))
    })
    .await;
    assert!(replica.get(&f.bucket, &key("s.1")).is_none());
    assert!(
        kv.watches.load(Ordering::SeqCst) >= 2,
        "it tried a new watch first"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn read_models_that_trail_the_event_log_make_the_replica_stale() {
    let f = fixture().await;
    let checkpoints = Bucket::new("projector").expect("valid");
    f.store.ensure_bucket(&checkpoints).await.expect("bucket");
    let checkpoint = key("checkpoint.read_models");
    let shutdown = CancellationToken::new();
    let config = ReplicaConfig {
        buckets: vec![f.bucket.clone()],
        max_staleness: Duration::from_millis(300),
        probe_interval: Duration::from_millis(30),
        projection: None,
        pending_changes: None,
    }
    .with_projection(checkpoints.clone(), checkpoint.clone());
    let replica = Replica::start(config, f.store.clone(), f.store.clone(), shutdown.clone());
    eventually("caught up", || replica.freshness().is_ok()).await;

    // An event the projector never applies (it is down).
    let subject = portcullis_proto::subjects::organization("O1").expect("subject");
    let appended = portcullis_store::EventLog::append(
        f.store.as_ref(),
        &subject,
        portcullis_store::Version::NONE,
        &portcullis_store::CommandId::parse("c-1").expect("command id"),
        portcullis_store::NewEvent {
            event_type: "portcullis.v1.Test".to_owned(),
            payload: Bytes::from_static(b"x"),
        },
    )
    .await
    .expect("append");
    eventually("stale: the projection trails the log", || {
        matches!(replica.freshness(), Err(Staleness::ProjectionBehind(_)))
    })
    .await;

    // The projector catches up: fresh again.
    let value = format!("{{\"applied_through\":{}}}", appended.sequence);
    f.store
        .put(&checkpoints, &checkpoint, Bytes::from(value), Expect::Any)
        .await
        .expect("checkpoint");
    eventually("fresh once the projection caught up", || {
        replica.freshness().is_ok()
    })
    .await;
    shutdown.cancel();
}

/// Keys `s.keep` and `s.gone`, and a caught-up replica whose first watch stalls and whose
/// later ones leave `s.keep` out of their replay.
async fn rewatches_leaving_out_s_keep(
    f: &Fixture,
) -> (Arc<StallsFirstWatch>, Replica, CancellationToken) {
    for name in ["s.keep", "s.gone"] {
        f.store
            .put(&f.bucket, &key(name), Bytes::from("live"), Expect::Any)
            .await
            .expect("put");
    }
    let kv = Arc::new(StallsFirstWatch {
        inner: f.store.clone(),
        watches: AtomicU64::new(0),
        later: Later::Omit(key("s.keep")),
        fail_gets: AtomicBool::new(false),
    });
    let shutdown = CancellationToken::new();
    let config = ReplicaConfig {
        buckets: vec![f.bucket.clone()],
        max_staleness: Duration::from_millis(600),
        probe_interval: Duration::from_millis(50),
        projection: None,
        pending_changes: None,
    };
    let replica = Replica::start(config, kv.clone(), f.store.clone(), shutdown.clone());
    eventually("caught up", || replica.freshness().is_ok()).await;
    (kv, replica, shutdown)
}

#[tokio::test]
async fn a_rewatch_that_misses_a_live_key_keeps_it_and_still_drops_a_deleted_one() {
    let f = fixture().await;
    let (kv, replica, shutdown) = rewatches_leaving_out_s_keep(&f).await;
    assert!(replica.get(&f.bucket, &key("s.keep")).is_some());
    // Deleted while the first watch is stalled: only the re-watch can tell.
    f.store
        .delete(&f.bucket, &key("s.gone"), Expect::Any)
        .await
        .expect("delete");
    eventually("the deletion is applied through a new watch", || {
        replica.get(&f.bucket, &key("s.gone")).is_none()
    })
    .await;
    assert!(kv.watches.load(Ordering::SeqCst) >= 2, "re-watched");
    eventually("caught up again", || replica.freshness().is_ok()).await;
    // Let the re-watch's catch-up finish whatever it does with unseen keys.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The key the re-watch did not replay is still there: the store holds it.
    assert!(
        replica.get(&f.bucket, &key("s.keep")).is_some(),
        "a live key missing from an incomplete replay was dropped"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn a_key_a_rewatch_cannot_confirm_is_kept_and_the_watch_tried_again() {
    let f = fixture().await;
    let (kv, replica, shutdown) = rewatches_leaving_out_s_keep(&f).await;
    // The store cannot answer single reads while the stalled watch is replaced.
    kv.fail_gets.store(true, Ordering::SeqCst);
    // Deleted while the first watch is stalled, and the store cannot answer single reads
    // while it is replaced: neither the kept key nor the deleted one can be confirmed.
    f.store
        .delete(&f.bucket, &key("s.gone"), Expect::Any)
        .await
        .expect("delete");
    eventually("the unconfirmed replay is watched again", || {
        kv.watches.load(Ordering::SeqCst) >= 3
    })
    .await;
    assert!(
        replica.get(&f.bucket, &key("s.keep")).is_some(),
        "a key the replay left out was dropped on a guess"
    );
    // Nothing is dropped on a guess, so the replica cannot vouch for its data: stale at the
    // bound.
    eventually("stale while replays stay unconfirmed", || {
        matches!(replica.freshness(), Err(Staleness::WatchDown(_)))
    })
    .await;
    // Reads work again: the next replay is confirmed, the deletion applied, the kept key
    // still served.
    kv.fail_gets.store(false, Ordering::SeqCst);
    eventually("fresh again", || replica.freshness().is_ok()).await;
    assert!(replica.get(&f.bucket, &key("s.gone")).is_none());
    assert!(replica.get(&f.bucket, &key("s.keep")).is_some());
    shutdown.cancel();
}

#[test]
fn a_pending_mark_holds_older_values_of_its_key_and_ends_once_shown_or_projected() {
    let pending = pending::Pending::new();
    let grant = key("grant.h.human.server");
    let other = key("grant.h.human2.server");
    pending.mark(grant.clone(), 5);
    assert_eq!(
        pending.ahead_of(&grant, 4, 0),
        Some(5),
        "an older value waits"
    );
    assert_eq!(pending.ahead_of(&other, 0, 0), None, "other keys do not");
    assert_eq!(
        pending.ahead_of(&grant, 4, 5),
        None,
        "projected: nothing to wait for"
    );
    pending.mark(grant.clone(), 9);
    assert_eq!(
        pending.ahead_of(&grant, 5, 0),
        Some(9),
        "a newer mark replaces it"
    );
    pending.mark(grant.clone(), 7);
    assert_eq!(
        pending.ahead_of(&grant, 5, 0),
        Some(9),
        "an older mark never does"
    );
    assert_eq!(pending.ahead_of(&grant, 9, 0), None, "shown: the mark ends");
    assert_eq!(pending.ahead_of(&grant, 0, 0), None, "and stays gone");

    // A removed human: every grant under the prefix waits, until projected.
    pending.mark_prefix(key("grant.h.human"), 12, 0);
    assert_eq!(pending.ahead_of(&grant, 9, 0), Some(12));
    assert_eq!(pending.ahead_of(&other, 0, 0), None, "not under the prefix");
    assert_eq!(pending.ahead_of(&key("grant.h.human"), 0, 0), None);
    assert_eq!(pending.ahead_of(&grant, 12, 0), None, "this key shows it");
    assert_eq!(
        pending.ahead_of(&grant, 9, 12),
        None,
        "the projector passed it"
    );
    assert_eq!(pending.ahead_of(&grant, 9, 0), None, "and the mark is gone");
}
