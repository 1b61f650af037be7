//! The contract suite against a 3-node JetStream cluster on loopback, with the event stream
//! and every bucket replicated three times (R3, as in production).
//!
//! Each test starts its own cluster with a fresh namespace; successive clients connect to
//! different nodes first, so writers, readers and watchers talk to followers as well as
//! leaders. The restart tests kill all three nodes at once.
//!
//! After a full restart NATS elects a meta leader and then a leader per stream, waiting a
//! random 4 to 9 s (fixed in its Raft code) before campaigning; together that can outlast the
//! suite's 10 s step budget for `restart`. So `restart` only kills and respawns the nodes, and
//! the next `connect` waits until every node is healthy and every stream has a leader.
#![allow(clippy::expect_used)] // a test harness: a failed set-up is the failure report

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use portcullis_contract_tests::{Backend, Stores};
use portcullis_store_jetstream::{JetStreamConfig, JetStreamStore};
use test_fixtures::{NatsCluster, unique_namespace};

/// One cluster and the namespace this test's stores use on it.
struct ThreeNodes {
    cluster: NatsCluster,
    namespace: String,
    /// How many clients were made; picks the node the next one connects to first.
    connections: AtomicUsize,
    /// Set by `restart`: the next `connect` waits for the cluster to be ready.
    restarted: AtomicBool,
}

async fn three_nodes() -> ThreeNodes {
    ThreeNodes {
        cluster: NatsCluster::start(3).await.expect("start a 3-node cluster"),
        namespace: unique_namespace(),
        connections: AtomicUsize::new(0),
        restarted: AtomicBool::new(false),
    }
}

#[async_trait]
impl Backend for ThreeNodes {
    async fn connect(&self) -> Stores {
        if self.restarted.swap(false, Ordering::SeqCst) {
            self.cluster
                .wait_until_ready()
                .await
                .expect("the restarted cluster elects its leaders");
        }
        let mut urls = self.cluster.client_urls();
        let first = self.connections.fetch_add(1, Ordering::Relaxed) % urls.len();
        urls.rotate_left(first);
        let config = JetStreamConfig {
            namespace: self.namespace.clone(),
            replicas: 3,
            retain_server_order: true,
            ..JetStreamConfig::new(urls)
        };
        let store = Arc::new(
            JetStreamStore::connect(config)
                .await
                .expect("connect to the cluster"),
        );
        Stores {
            log: store.clone(),
            kv: store.clone(),
            audit: store,
        }
    }

    async fn restart(&mut self) {
        self.cluster.kill();
        self.cluster
            .spawn_stopped_nodes()
            .expect("start the killed nodes again");
        self.restarted.store(true, Ordering::SeqCst);
    }
}

portcullis_contract_tests::contract_tests!(three_nodes());
