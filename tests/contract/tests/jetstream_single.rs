//! The contract suite against one `nats-server` node (stream and buckets with one replica).
//!
//! Each test starts its own server (a fraction of a second) with a fresh namespace, so tests
//! never see each other's data and the restart test kills only its own server.
#![allow(clippy::expect_used)] // a test harness: a failed set-up is the failure report

use std::sync::Arc;

use async_trait::async_trait;
use portcullis_contract_tests::{Backend, Stores};
use portcullis_store_jetstream::{JetStreamConfig, JetStreamStore};
use test_fixtures::{NatsServer, unique_namespace};

/// One server and the namespace this test's stores use on it.
struct SingleNode {
    server: NatsServer,
    namespace: String,
}

async fn single_node() -> SingleNode {
    SingleNode {
        server: NatsServer::start().await.expect("start nats-server"),
        namespace: unique_namespace(),
    }
}

#[async_trait]
impl Backend for SingleNode {
    async fn connect(&self) -> Stores {
        let config = JetStreamConfig {
            namespace: self.namespace.clone(),
            ..JetStreamConfig::new(self.server.client_urls())
        };
        let store = Arc::new(
            JetStreamStore::connect(config)
                .await
                .expect("connect to nats-server"),
        );
        Stores {
            log: store.clone(),
            kv: store.clone(),
            audit: store,
        }
    }

    async fn restart(&mut self) {
        self.server.restart().await.expect("restart nats-server");
    }
}

portcullis_contract_tests::contract_tests!(single_node());
