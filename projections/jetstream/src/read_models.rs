//! `ReadModelStore` on JetStream KV buckets (one bucket per read-model bucket, keeping
//! `kv_history` records per key).
//!
//! Owns: bucket creation, leader reads of single keys, compare-and-set writes through
//! `Nats-Expected-Last-Subject-Sequence` on the bucket's stream, key listings and watches
//! through ordered consumers, and the decoding of KV records (`KV-Operation` header).
//!
//! Why history above 1 and an eagerly drained watch: a watcher's records are read from the
//! server after they are stored, and a record is gone once its key has `kv_history` newer ones;
//! with history 1, a key written twice before the watcher read the first write loses that
//! change, which the watch contract forbids.
//!
//! Must not: read through a possibly lagging replica (`get` and the `Absent` checks go to the
//! stream leader), or skip a record it cannot decode. KV writes go through our own publish, not
//! async-nats' KV helpers, so that a replicated stream's 10164 conflict and its 10163 "not
//! ready" answer are told apart from failures.

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::kv;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{ConsumerErrorKind, LastRawMessageErrorKind, StorageType};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use portcullis_store::{
    BoxError, Bucket, Entry, Expect, Key, KvError, MAX_VALUE_BYTES, ReadModelStore, WatchEvent,
    WatchStream,
};
use tracing::Instrument;

use crate::JetStreamStore;
use crate::publish::{PublishFailure, is_stream_not_found, publish, retry_delay};
use crate::stream_state::{StreamState, stream_state, wait_until_ready};

/// Header in which JetStream KV marks deletes and purges.
const KV_OPERATION_HEADER: &str = "KV-Operation";
const KV_DELETE: &str = "DEL";
const KV_PURGE: &str = "PURGE";

/// The wire names of one read-model bucket.
struct KvNames {
    /// The KV bucket, `<namespace>_<bucket>`.
    bucket: String,
    /// Its stream, `KV_<namespace>_<bucket>`.
    stream: String,
    /// Prefix of its keys' subjects, `$KV.<namespace>_<bucket>.`.
    subject_prefix: String,
}

impl KvNames {
    fn key_subject(&self, key: &Key) -> String {
        format!("{}{}", self.subject_prefix, key.as_str())
    }
}

/// What the last record of a key says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    Put,
    /// A delete or a purge: the key has no live value.
    Removed,
}

fn operation(headers: Option<&HeaderMap>) -> Result<Operation, String> {
    match headers.and_then(|h| h.get(KV_OPERATION_HEADER)) {
        None => Ok(Operation::Put),
        Some(op) if op.as_str() == KV_DELETE || op.as_str() == KV_PURGE => Ok(Operation::Removed),
        Some(op) => Err(format!("unknown {KV_OPERATION_HEADER} {:?}", op.as_str())),
    }
}

/// A key's last record, live or a delete marker.
struct Record {
    operation: Operation,
    revision: u64,
    value: Bytes,
}

impl JetStreamStore {
    fn kv_names(&self, bucket: &Bucket) -> KvNames {
        let kv_bucket = self.names.kv_bucket(bucket);
        KvNames {
            stream: format!("KV_{kv_bucket}"),
            subject_prefix: format!("$KV.{kv_bucket}."),
            bucket: kv_bucket,
        }
    }

    async fn kv_stream(
        &self,
        bucket: &Bucket,
        names: &KvNames,
    ) -> Result<async_nats::jetstream::stream::Stream<()>, KvError> {
        // No request is made; this only validates the name, which `Names` guarantees.
        self.js
            .get_stream_no_info(&names.stream)
            .await
            .map_err(|err| unavailable(format!("opening bucket {bucket}"), err.into()))
    }

    /// Whether the bucket's stream exists, asked of the server.
    async fn bucket_exists(&self, bucket: &Bucket, names: &KvNames) -> Result<bool, KvError> {
        match stream_state(&self.js, &names.stream).await {
            Ok(state) => Ok(!matches!(state, StreamState::Missing)),
            Err(err) => Err(unavailable(
                format!("checking that bucket {bucket} exists"),
                err.into(),
            )),
        }
    }

    #[tracing::instrument(name = "store.jetstream.ensure_bucket", skip_all, fields(%bucket))]
    async fn ensure_kv_bucket(&self, bucket: &Bucket) -> Result<(), KvError> {
        let names = self.kv_names(bucket);
        let checking = || format!("checking that bucket {bucket} exists");
        let mut failed_creates = 0;
        loop {
            // A bucket another client is creating right now exists before it has a leader;
            // until then it answers no request, so wait for that first election.
            let state = wait_until_ready(&self.js, &names.stream, self.request_timeout)
                .await
                .map_err(|err| unavailable(checking(), err.into()))?;
            match state {
                StreamState::Ready(_) => return Ok(()),
                StreamState::Leaderless => {
                    return Err(unavailable(
                        checking(),
                        format!("bucket {bucket} has no leader").into(),
                    ));
                }
                StreamState::Missing => {}
            }
            // The server answers a create once the new bucket has its leader.
            let created = self
                .js
                .create_key_value(kv::Config {
                    bucket: names.bucket.clone(),
                    history: i64::from(self.kv_history),
                    storage: StorageType::File,
                    num_replicas: self.replicas,
                    ..Default::default()
                })
                .await;
            match created {
                Ok(_) => return Ok(()),
                // A concurrent caller may have created it meanwhile (the next check sees it),
                // or a replicated bucket's first leader election outlasted the request.
                Err(err) if failed_creates + 1 < self.publish_attempts => {
                    failed_creates += 1;
                    tracing::debug!(%bucket, error = %err, "Bucket not created; checking again.");
                    tokio::time::sleep(retry_delay(failed_creates)).await;
                }
                Err(err) => {
                    return Err(unavailable(format!("creating bucket {bucket}"), err.into()));
                }
            }
        }
    }

    /// The last record of a key, read from the stream leader.
    async fn last_record(&self, bucket: &Bucket, key: &Key) -> Result<Option<Record>, KvError> {
        let names = self.kv_names(bucket);
        let stream = self.kv_stream(bucket, &names).await?;
        match stream
            .get_last_raw_message_by_subject(&names.key_subject(key))
            .await
        {
            Ok(message) => {
                let operation =
                    operation(Some(&message.headers)).map_err(|reason| KvError::Corrupt {
                        bucket: bucket.clone(),
                        reason: format!("{key} at revision {}: {reason}", message.sequence),
                    })?;
                Ok(Some(Record {
                    operation,
                    revision: message.sequence,
                    value: message.payload,
                }))
            }
            Err(err) => match err.kind() {
                LastRawMessageErrorKind::NoMessageFound => Ok(None),
                LastRawMessageErrorKind::JetStream(js_err) if is_stream_not_found(&js_err) => {
                    Err(KvError::NoSuchBucket(bucket.clone()))
                }
                _ => Err(unavailable(format!("reading {bucket}/{key}"), err.into())),
            },
        }
    }

    #[tracing::instrument(name = "store.jetstream.get", skip_all, fields(%bucket, %key))]
    async fn get_entry(&self, bucket: &Bucket, key: &Key) -> Result<Option<Entry>, KvError> {
        Ok(self
            .last_record(bucket, key)
            .await?
            .filter(|record| record.operation == Operation::Put)
            .map(|record| Entry {
                key: key.clone(),
                value: record.value,
                revision: record.revision,
            }))
    }

    /// Publishes one record of `key`; with `expected_revision`, only if the key's last record
    /// has that revision (0: the key has no record at all). Returns the new revision.
    async fn write_record(
        &self,
        bucket: &Bucket,
        key: &Key,
        expect: Expect,
        record: (HeaderMap, Bytes),
        expected_revision: Option<u64>,
    ) -> Result<u64, KvError> {
        let names = self.kv_names(bucket);
        let subject = names.key_subject(key);
        let (headers, payload) = record;
        let started = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut message = PublishMessage::build()
                .headers(headers.clone())
                .payload(payload.clone());
            if let Some(revision) = expected_revision {
                message = message.expected_last_subject_sequence(revision);
            }
            let (source, again): (BoxError, bool) = match publish(&self.js, &subject, message).await
            {
                Ok(ack) => return Ok(ack.sequence),
                Err(PublishFailure::Conflict) => {
                    return Err(KvError::Conflict {
                        bucket: bucket.clone(),
                        key: key.clone(),
                        expected: expect,
                        actual: None,
                    });
                }
                // Nobody received it. Either the bucket is missing, or the interest of its
                // (new) leader has not reached this client's server yet; keep at it for
                // one request timeout.
                Err(PublishFailure::NoStream) => {
                    if !self.bucket_exists(bucket, &names).await? {
                        return Err(KvError::NoSuchBucket(bucket.clone()));
                    }
                    let again = started.elapsed() < self.request_timeout;
                    (format!("no stream answered on {subject}").into(), again)
                }
                Err(PublishFailure::Retryable(source)) => (source, attempt < self.publish_attempts),
                Err(PublishFailure::Failed(source)) => (source, false),
            };
            // A resend is safe: a put overwrites with the same value, and a conditional write
            // that had landed fails its condition (a conflict the caller resolves by reading
            // again).
            if again {
                tracing::debug!(attempt, error = %source, "Read-model write not acknowledged; sending it again.");
                tokio::time::sleep(retry_delay(attempt)).await;
                continue;
            }
            return Err(unavailable(format!("writing {bucket}/{key}"), source));
        }
    }

    #[tracing::instrument(name = "store.jetstream.put", skip_all, fields(%bucket, %key, ?expect))]
    async fn put_value(
        &self,
        bucket: &Bucket,
        key: &Key,
        value: Bytes,
        expect: Expect,
    ) -> Result<u64, KvError> {
        if value.len() > MAX_VALUE_BYTES {
            return Err(KvError::TooLarge {
                bucket: bucket.clone(),
                key: key.clone(),
                size: value.len(),
            });
        }
        let record = (HeaderMap::new(), value);
        match expect {
            Expect::Any => self.write_record(bucket, key, expect, record, None).await,
            Expect::Revision(revision) => {
                self.write_record(bucket, key, expect, record, Some(revision))
                    .await
            }
            Expect::Absent => {
                match self
                    .write_record(bucket, key, expect, record.clone(), Some(0))
                    .await
                {
                    Err(KvError::Conflict { .. }) => {}
                    done => return done,
                }
                // The key has a record; it is absent if that record is a delete, and then the
                // write is conditional on that delete still being the last record.
                match self.last_record(bucket, key).await? {
                    Some(Record {
                        operation: Operation::Removed,
                        revision,
                        ..
                    }) => {
                        self.write_record(bucket, key, expect, record, Some(revision))
                            .await
                    }
                    live => Err(KvError::Conflict {
                        bucket: bucket.clone(),
                        key: key.clone(),
                        expected: expect,
                        actual: live.map(|record| record.revision),
                    }),
                }
            }
        }
    }

    #[tracing::instrument(name = "store.jetstream.delete", skip_all, fields(%bucket, %key, ?expect))]
    async fn delete_key(&self, bucket: &Bucket, key: &Key, expect: Expect) -> Result<(), KvError> {
        let mut headers = HeaderMap::new();
        headers.insert(KV_OPERATION_HEADER, KV_DELETE);
        let record = (headers, Bytes::new());
        match expect {
            Expect::Any => self.write_record(bucket, key, expect, record, None).await?,
            Expect::Revision(revision) => {
                self.write_record(bucket, key, expect, record, Some(revision))
                    .await?
            }
            // Nothing to delete; a live value is a failed precondition.
            Expect::Absent => {
                return match self.get_entry(bucket, key).await? {
                    None => Ok(()),
                    Some(entry) => Err(KvError::Conflict {
                        bucket: bucket.clone(),
                        key: key.clone(),
                        expected: expect,
                        actual: Some(entry.revision),
                    }),
                };
            }
        };
        Ok(())
    }

    /// An ordered consumer over the bucket delivering the last record of each matching key,
    /// then live records; also says how many records were pending when it was created.
    async fn last_per_key_consumer(
        &self,
        bucket: &Bucket,
        filter_subjects: Vec<String>,
        headers_only: bool,
    ) -> Result<(pull::Ordered, u64), KvError> {
        let names = self.kv_names(bucket);
        let stream = self.kv_stream(bucket, &names).await?;
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                filter_subjects,
                deliver_policy: DeliverPolicy::LastPerSubject,
                headers_only,
                ..Default::default()
            })
            .await
            .map_err(|err| match err.kind() {
                ConsumerErrorKind::JetStream(js_err) if is_stream_not_found(&js_err) => {
                    KvError::NoSuchBucket(bucket.clone())
                }
                _ => unavailable(format!("reading bucket {bucket}"), err.into()),
            })?;
        let pending = consumer.cached_info().num_pending;
        let messages = consumer
            .messages()
            .await
            .map_err(|err| unavailable(format!("reading bucket {bucket}"), err.into()))?;
        Ok((messages, pending))
    }

    /// The bucket stream's last sequence as its leader sees it: every write acknowledged
    /// before this call is at or below it.
    async fn last_sequence(&self, bucket: &Bucket) -> Result<u64, KvError> {
        let names = self.kv_names(bucket);
        let stream = self.kv_stream(bucket, &names).await?;
        let info = stream
            .get_info()
            .await
            .map_err(|err| unavailable(format!("reading bucket {bucket}"), err.into()))?;
        Ok(info.state.last_sequence)
    }

    #[tracing::instrument(name = "store.jetstream.keys", skip_all, fields(%bucket, prefix = ?prefix))]
    async fn list_keys(&self, bucket: &Bucket, prefix: Option<&Key>) -> Result<Vec<Key>, KvError> {
        let names = self.kv_names(bucket);
        let filter_subjects = match prefix {
            None => vec![format!("{}>", names.subject_prefix)],
            // The prefix itself and everything under it on a token boundary.
            Some(prefix) => {
                let subject = names.key_subject(prefix);
                vec![format!("{subject}.>"), subject]
            }
        };
        let (mut messages, pending) = self
            .last_per_key_consumer(bucket, filter_subjects, true)
            .await?;
        let mut keys = std::collections::BTreeSet::new();
        if pending == 0 {
            return Ok(Vec::new());
        }
        let context = || format!("listing keys of {bucket}");
        loop {
            let message = tokio::time::timeout(self.request_timeout, messages.next())
                .await
                .map_err(|elapsed| unavailable(context(), elapsed.into()))?
                .ok_or_else(|| unavailable(context(), "key listing ended early".into()))?
                .map_err(|err| unavailable(context(), err.into()))?;
            let record = decode_record(bucket, &names, &message)?;
            match record.operation {
                Operation::Put => keys.insert(record.key),
                Operation::Removed => keys.remove(&record.key),
            };
            if record.pending == 0 {
                break;
            }
        }
        Ok(keys.into_iter().collect())
    }

    #[tracing::instrument(name = "store.jetstream.watch", skip_all, fields(%bucket))]
    async fn watch_bucket(&self, bucket: &Bucket) -> Result<WatchStream, KvError> {
        let names = self.kv_names(bucket);
        let filter = vec![format!("{}>", names.subject_prefix)];
        let (messages, _) = self.last_per_key_consumer(bucket, filter, false).await?;
        // The consumer's own count can trail acknowledged writes on a cluster (its node may
        // not have applied them yet), so caught up also needs a record at or past the
        // leader's last sequence, asked after the consumer exists.
        let target = self.last_sequence(bucket).await?;
        // Nothing to replay: caught up before the first live change. Otherwise caught up right
        // after the record that left nothing pending and reached the target.
        let initially_caught_up = target == 0;
        let mut caught_up = initially_caught_up;
        let bucket = bucket.clone();
        let changes = messages.flat_map(move |message| {
            let mut out = Vec::with_capacity(2);
            let record = message
                .map_err(|err| unavailable(format!("watching {bucket}"), err.into()))
                .and_then(|message| decode_record(&bucket, &names, &message));
            match record {
                Ok(record) => {
                    out.push(Ok(match record.operation {
                        Operation::Put => WatchEvent::Put(Entry {
                            key: record.key,
                            value: record.value,
                            revision: record.revision,
                        }),
                        Operation::Removed => WatchEvent::Deleted {
                            key: record.key,
                            revision: record.revision,
                        },
                    }));
                    if !caught_up && record.pending == 0 && record.revision >= target {
                        caught_up = true;
                        out.push(Ok(WatchEvent::CaughtUp));
                    }
                }
                Err(err) => out.push(Err(err)),
            }
            futures::stream::iter(out)
        });
        let start = futures::stream::iter(initially_caught_up.then_some(Ok(WatchEvent::CaughtUp)));
        let mut events = Box::pin(start.chain(changes));
        // Read records off the server as soon as they are stored, whether or not the caller
        // polls: a record still waiting on the server is removed once its key has
        // `kv_history` newer ones, and its change would be lost. The buffer is unbounded; a
        // watcher that is never read grows it.
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        let span = tracing::Span::current();
        tokio::spawn(
            async move {
                loop {
                    tokio::select! {
                        () = sender.closed() => break,
                        event = events.next() => {
                            let Some(event) = event else { break };
                            if sender.send(event).is_err() {
                                break;
                            }
                        }
                    }
                }
            }
            .instrument(span),
        );
        Ok(Box::pin(futures::stream::poll_fn(move |cx| {
            receiver.poll_recv(cx)
        })))
    }
}

/// One KV record as a consumer delivered it.
struct DeliveredRecord {
    key: Key,
    operation: Operation,
    revision: u64,
    value: Bytes,
    /// Records still pending for the consumer after this one.
    pending: u64,
}

fn decode_record(
    bucket: &Bucket,
    names: &KvNames,
    message: &async_nats::jetstream::Message,
) -> Result<DeliveredRecord, KvError> {
    let corrupt = |reason: String| KvError::Corrupt {
        bucket: bucket.clone(),
        reason,
    };
    let info = message
        .info()
        .map_err(|err| corrupt(format!("unreadable delivery metadata: {err}")))?;
    let key = message
        .subject
        .as_str()
        .strip_prefix(names.subject_prefix.as_str())
        .ok_or_else(|| corrupt(format!("subject {} is outside the bucket", message.subject)))
        .and_then(|key| Key::new(key).map_err(|err| corrupt(format!("bad key: {err}"))))?;
    let operation = operation(message.headers.as_ref()).map_err(|reason| {
        corrupt(format!(
            "{key} at revision {}: {reason}",
            info.stream_sequence
        ))
    })?;
    Ok(DeliveredRecord {
        key,
        operation,
        revision: info.stream_sequence,
        value: message.payload.clone(),
        pending: info.pending,
    })
}

fn unavailable(context: String, source: BoxError) -> KvError {
    KvError::Unavailable { context, source }
}

#[async_trait]
impl ReadModelStore for JetStreamStore {
    async fn ensure_bucket(&self, bucket: &Bucket) -> Result<(), KvError> {
        self.ensure_kv_bucket(bucket).await
    }

    async fn get(&self, bucket: &Bucket, key: &Key) -> Result<Option<Entry>, KvError> {
        self.get_entry(bucket, key).await
    }

    async fn put(
        &self,
        bucket: &Bucket,
        key: &Key,
        value: Bytes,
        expect: Expect,
    ) -> Result<u64, KvError> {
        self.put_value(bucket, key, value, expect).await
    }

    async fn delete(&self, bucket: &Bucket, key: &Key, expect: Expect) -> Result<(), KvError> {
        self.delete_key(bucket, key, expect).await
    }

    async fn keys(&self, bucket: &Bucket, prefix: Option<&Key>) -> Result<Vec<Key>, KvError> {
        self.list_keys(bucket, prefix).await
    }

    async fn watch(&self, bucket: &Bucket) -> Result<WatchStream, KvError> {
        self.watch_bucket(bucket).await
    }

    async fn last_revision(&self, bucket: &Bucket) -> Result<u64, KvError> {
        // The stream's last sequence, asked of its leader: a missing bucket is named as such.
        let names = self.kv_names(bucket);
        if !self.bucket_exists(bucket, &names).await? {
            return Err(KvError::NoSuchBucket(bucket.clone()));
        }
        self.last_sequence(bucket).await
    }
}

#[cfg(test)]
mod tests;
