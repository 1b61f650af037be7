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

/// async-nats recreates an ordered consumer that has delivered nothing yet from the start of
/// the stream; the store's subscription still never shows an event before the sequence it was
/// asked to start from. The consumer is deleted behind the subscription's back to force the
/// reset deterministically.
#[tokio::test]
async fn a_reset_subscription_never_replays_before_its_start() {
    use futures::StreamExt;
    use portcullis_contract_tests::{command, event, labels, next_event, subject};
    use portcullis_store::SubjectFilter;

    let backend = single_node().await;
    let stores = backend.connect().await;
    let s1 = subject("h1", "server", "s1");
    for label in ["before-1", "before-2"] {
        let version = stores.log.load(&s1).await.expect("load").version;
        stores
            .log
            .append(&s1, version, &command(label), event(label))
            .await
            .expect("append");
    }
    let head = stores.log.head().await.expect("head");
    let filter = SubjectFilter::host("h1").expect("filter");
    let mut live = stores
        .log
        .subscribe(&filter, head + 1)
        .await
        .expect("subscribe");

    let client = async_nats::connect(backend.server.client_urls().join(","))
        .await
        .expect("connect");
    let jetstream = async_nats::jetstream::new(client);
    let stream_name = format!("{}_EVENTS", backend.namespace.to_ascii_uppercase());
    let stream = jetstream.get_stream(&stream_name).await.expect("stream");
    let names: Vec<String> = stream
        .consumer_names()
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("consumer names");
    assert_eq!(
        names.len(),
        1,
        "the subscription's ordered consumer: {names:?}"
    );
    stream
        .delete_consumer(&names[0])
        .await
        .expect("delete consumer");

    let version = stores.log.load(&s1).await.expect("load").version;
    stores
        .log
        .append(&s1, version, &command("after"), event("after"))
        .await
        .expect("append after the reset");
    assert_eq!(labels(&[next_event(&mut live).await]), ["after"]);
}
