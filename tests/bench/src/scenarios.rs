//! The measured workloads. Each returns the tail of a markdown table row:
//! `result | p50 | p99 | notes`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use portcullis_store::{AppendError, CommandId, NewEvent, Subject, Version};

use crate::backend::Backend;

/// What one writer task reports: operations done and their latencies.
type WriterResult = anyhow::Result<(u64, Histogram<u64>)>;

/// Waits for every writer; returns the total operations, the merged latencies, and the
/// seconds the run took (at least `duration`).
async fn join_writers(
    tasks: Vec<tokio::task::JoinHandle<WriterResult>>,
    duration: Duration,
) -> anyhow::Result<(u64, Histogram<u64>, f64)> {
    let started = Instant::now();
    let mut total = 0;
    let mut latencies = histogram();
    for task in tasks {
        let (n, h) = task.await??;
        total += n;
        latencies.add(h).expect("same bounds");
    }
    Ok((
        total,
        latencies,
        started.elapsed().max(duration).as_secs_f64(),
    ))
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

fn ms(micros: u64) -> String {
    format!("{:.2} ms", micros as f64 / 1000.0)
}

fn payload() -> NewEvent {
    // About the size of a real GrantIssued event with its metadata.
    NewEvent {
        event_type: "bench.v1.Appended".to_owned(),
        payload: Bytes::from(vec![b'x'; 160]),
    }
}

/// Every writer owns its aggregates; every append carries the expected version, so the
/// concurrency check runs on every write but never fails.
pub async fn append(
    backend: &Backend,
    writers: usize,
    duration: Duration,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let log = backend.connect().await?.log;
        tasks.push(tokio::spawn(async move {
            let mut latencies = histogram();
            let mut versions = [Version::NONE; 8];
            let mut n = 0u64;
            while Instant::now() < deadline {
                let slot = (n % 8) as usize;
                let subject = Subject::new("bench", "agg", &format!("w{w}-{slot}")).expect("valid");
                let id = CommandId::parse(&format!("w{w}-n{n}")).expect("valid");
                let start = Instant::now();
                let appended = log.append(&subject, versions[slot], &id, payload()).await?;
                latencies
                    .record(start.elapsed().as_micros() as u64)
                    .expect("in range");
                versions[slot] = Version(appended.sequence);
                n += 1;
            }
            anyhow::Ok((n, latencies))
        }));
    }
    let (total, latencies, elapsed) = join_writers(tasks, duration).await?;
    Ok(format!(
        "{:.0} appends/s | {} | {} | {} writers, 8 aggregates each, {} appends",
        total as f64 / elapsed,
        ms(latencies.value_at_quantile(0.5)),
        ms(latencies.value_at_quantile(0.99)),
        writers,
        total
    ))
}

/// All writers race on 4 aggregates: load the version, append with it, and on a conflict
/// load again and retry. Reports successful appends per second and how many lost a race.
pub async fn contended(
    backend: &Backend,
    writers: usize,
    duration: Duration,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + duration;
    let conflicts = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let log = backend.connect().await?.log;
        let conflicts = conflicts.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = histogram();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let subject = Subject::new("bench", "hot", &format!("h{}", n % 4)).expect("valid");
                let id = CommandId::parse(&format!("w{w}-n{n}")).expect("valid");
                let start = Instant::now();
                loop {
                    let version = log.load(&subject).await?.version;
                    match log.append(&subject, version, &id, payload()).await {
                        Ok(_) => break,
                        Err(AppendError::Conflict { .. }) => {
                            conflicts.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(other) => return Err(other.into()),
                    }
                }
                latencies
                    .record(start.elapsed().as_micros() as u64)
                    .expect("in range");
                n += 1;
            }
            anyhow::Ok((n, latencies))
        }));
    }
    let (total, latencies, elapsed) = join_writers(tasks, duration).await?;
    Ok(format!(
        "{:.0} commands/s | {} | {} | {} writers, {} commands, {} lost races (retried)",
        total as f64 / elapsed,
        ms(latencies.value_at_quantile(0.5)),
        ms(latencies.value_at_quantile(0.99)),
        writers,
        total,
        conflicts.load(Ordering::Relaxed)
    ))
}

/// Projection lag: appends `GrantIssued` events at `rate` per second with the projector
/// running, and times each from just before its append to the moment a watcher on the grants
/// bucket (what a data plane runs) sees its read model. Reports p50/p99 of that lag.
pub async fn lag(backend: &Backend, events: usize, rate: u32) -> anyhow::Result<String> {
    use futures::StreamExt as _;
    use portcullis_projector::{Buckets, Projector, ProjectorOptions};
    use portcullis_proto::events::v1::{Actor, Event, EventMeta, GrantIssued, actor, event::Body};
    use portcullis_store::WatchEvent;
    use std::collections::HashMap;
    use tokio_util::sync::CancellationToken;

    const HOST: &str = "bench-host";
    let writer = backend.connect().await?;
    let projector_stores = backend.connect().await?;
    let watcher = backend.connect().await?;

    let shutdown = CancellationToken::new();
    let projector = Projector::new(
        projector_stores.log,
        projector_stores.kv,
        ProjectorOptions::default(),
    )?;
    let grants = Buckets::new(None)?.by_base("grants").clone();
    let mut progress = projector.progress();
    let running = tokio::spawn(projector.run(shutdown.clone()));
    progress.wait_for(|p| p.caught_up).await?;

    let mut watch = watcher.kv.watch(&grants).await?;
    while let Some(change) = watch.next().await {
        if change? == WatchEvent::CaughtUp {
            break;
        }
    }
    let started: Arc<std::sync::Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen_by = started.clone();
    let observer = tokio::spawn(async move {
        let mut lags = histogram();
        while lags.len() < events as u64 {
            match watch.next().await {
                Some(Ok(WatchEvent::Put(entry))) => {
                    let seen = Instant::now();
                    let key = entry.key.to_string();
                    if let Some(start) = seen_by.lock().expect("not poisoned").remove(&key) {
                        lags.record(seen.duration_since(start).as_micros().max(1) as u64)
                            .expect("in range");
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(anyhow::Error::from(e)),
                None => anyhow::bail!("watch ended"),
            }
        }
        Ok(lags)
    });

    let mut ticker = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
    for i in 0..events {
        ticker.tick().await;
        let human = format!("HUMAN{i:06}");
        let server = "SERVER000001";
        let subject = portcullis_proto::subjects::grant(HOST, &human, server)?;
        let event = Event {
            meta: Some(EventMeta {
                occurred_at_ms: 1,
                actor: Some(Actor {
                    kind: Some(actor::Kind::System("bench".into())),
                }),
                correlation_id: format!("bench-{i}"),
            }),
            body: Some(Body::GrantIssued(GrantIssued {
                human_id: human.clone(),
                server_id: server.into(),
                max_trust_level: portcullis_proto::events::v1::TrustLevel::Medium as i32,
            })),
        };
        let key = format!("grant.{HOST}.{human}.{server}");
        started
            .lock()
            .expect("not poisoned")
            .insert(key, Instant::now());
        writer
            .log
            .append(
                &subject,
                Version::NONE,
                &CommandId::parse(&format!("lag-{i}"))?,
                portcullis_proto::encode_event(event),
            )
            .await?;
    }
    let lags = tokio::time::timeout(Duration::from_secs(120), observer).await???;
    shutdown.cancel();
    running.await??;
    Ok(format!(
        "{} events at {rate}/s | {} | {} | append start → watcher sees read model; max {}",
        lags.len(),
        ms(lags.value_at_quantile(0.5)),
        ms(lags.value_at_quantile(0.99)),
        ms(lags.max()),
    ))
}

/// An audit record for the audit scenarios: host `host % 8`, agent `agent`, and the human,
/// tool and decision cycling with `n` (16 humans, 3 tools, one denial in ten); the record
/// about the size of a real encoded `AuditRecord`.
fn audit_entry(record_id: String, host: u64, agent: u64, n: u64) -> portcullis_store::AuditEntry {
    use portcullis_store::{AuditDecision, AuditEntry};

    AuditEntry {
        record_id,
        host_id: format!("bench-host-{}", host % 8),
        time_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
        human_id: format!("human-{}", n % 16),
        agent_id: format!("agent-{agent}"),
        server_id: "server-1".to_owned(),
        tool: ["read_file", "write_file", "delete_file"][(n % 3) as usize].to_owned(),
        decision: if n.is_multiple_of(10) {
            AuditDecision::Denied
        } else {
            AuditDecision::Allowed
        },
        record: Bytes::from(vec![b'r'; 280]),
    }
}

/// Durable audit appends from `writers` concurrent callers for `duration`, each append timed
/// until it is acknowledged (committed and fsynced on SQLite, PubAck on JetStream); records of
/// 8 hosts, about the size of a real encoded `AuditRecord`. Then 100 first-page queries (50
/// records) of one host, half of them filtered by human, to show what an admin sees.
pub async fn audit(
    backend: &Backend,
    writers: usize,
    duration: Duration,
) -> anyhow::Result<String> {
    use portcullis_store::AuditFilter;

    let clients = [backend.connect().await?, backend.connect().await?];
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let audit = clients[w % clients.len()].audit.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = histogram();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let entry = audit_entry(format!("w{w}-n{n}"), w as u64, w as u64, n);
                let start = Instant::now();
                audit.append(entry).await?;
                latencies
                    .record(start.elapsed().as_micros().max(1) as u64)
                    .expect("in range");
                n += 1;
            }
            anyhow::Ok((n, latencies))
        }));
    }
    let (total, latencies, elapsed) = join_writers(tasks, duration).await?;

    let mut queries = histogram();
    for i in 0..100 {
        // Host 0 has records whatever the number of writers.
        let mut filter = AuditFilter::host("bench-host-0");
        if i % 2 == 1 {
            filter.human_id = Some("human-7".to_owned());
        }
        let start = Instant::now();
        let page = clients[i % 2].audit.query(filter, 50, None).await?;
        queries
            .record(start.elapsed().as_micros().max(1) as u64)
            .expect("in range");
        anyhow::ensure!(!page.records.is_empty(), "the query found the records");
    }
    Ok(format!(
        "{:.0} appends/s | {} | {} | {} callers, {} records; first page of 50 (host / host+human): p50 {}, p99 {}",
        total as f64 / elapsed,
        ms(latencies.value_at_quantile(0.5)),
        ms(latencies.value_at_quantile(0.99)),
        writers,
        total,
        ms(queries.value_at_quantile(0.5)),
        ms(queries.value_at_quantile(0.99)),
    ))
}

/// Audit appends at a fixed `rate` for `duration`, each started on time by a pacer whether or
/// not earlier ones were acknowledged (so a slow acknowledgement delays no later append), and
/// timed until acknowledged: the share of a call's added latency that the data plane waits
/// for its audit record at that rate. Records as in `audit`, with ids in time order like the
/// data plane's ULIDs.
pub async fn audit_rate(
    backend: &Backend,
    rate: u32,
    duration: Duration,
) -> anyhow::Result<String> {
    anyhow::ensure!(rate > 0, "--audit-rate must be at least 1");
    let audit = backend.connect().await?.audit;
    let total = (u64::from(rate) * duration.as_secs()).max(1);
    let interval = Duration::from_secs(1) / rate;
    let (done, mut acknowledged) = tokio::sync::mpsc::unbounded_channel();
    let started = tokio::time::Instant::now();
    for n in 0..total {
        tokio::time::sleep_until(started + interval * u32::try_from(n)?).await;
        let audit = audit.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let entry = audit_entry(format!("r{n:012}"), n, n % 32, n);
            let start = Instant::now();
            let result = audit.append(entry).await.map(|_| start.elapsed());
            let _ = done.send(result);
        });
    }
    drop(done);
    let mut latencies = histogram();
    while let Some(result) = acknowledged.recv().await {
        latencies
            .record(result?.as_micros().max(1) as u64)
            .expect("in range");
    }
    Ok(format!(
        "{rate} appends/s | {} | {} | p90 {}, p99.9 {}, max {}; {} records",
        ms(latencies.value_at_quantile(0.5)),
        ms(latencies.value_at_quantile(0.99)),
        ms(latencies.value_at_quantile(0.9)),
        ms(latencies.value_at_quantile(0.999)),
        ms(latencies.max()),
        latencies.len(),
    ))
}

/// Admin commands per second through the control service with the projector running, and
/// the latency of each from the call to the moment its read model is updated (the service
/// returns only then: read-your-writes). Each writer adds humans (email reservation, then the
/// human: two aggregates per command) to one host.
pub async fn control(
    backend: &Backend,
    writers: usize,
    duration: Duration,
) -> anyhow::Result<String> {
    use portcullis_commands::Context;
    use portcullis_commands::bootstrap::{DEFAULT_ORG_ID, ensure_default_organization};
    use portcullis_commands::control::{
        Control, ControlOptions, CreateHost, NoSecretSealer, generate_admin_token,
    };
    use portcullis_projector::{Projector, ProjectorOptions};
    use tokio_util::sync::CancellationToken;

    let stores = backend.connect().await?;
    let shutdown = CancellationToken::new();
    let projector = Projector::new(
        stores.log.clone(),
        stores.kv.clone(),
        ProjectorOptions::default(),
    )?;
    // Measure commands, not bucket creation: on a fresh R3 cluster each new bucket waits
    // for a stream leader, longer than a command's read-your-writes bound.
    let mut progress = projector.progress();
    let running = tokio::spawn(projector.run(shutdown.clone()));
    progress.wait_for(|p| p.caught_up).await?;
    let control = Arc::new(Control::new(
        stores.log.clone(),
        stores.kv.clone(),
        Arc::new(NoSecretSealer),
        ControlOptions::default(),
    )?);
    let context = Context::system("bench", "bench");
    ensure_default_organization(stores.log.as_ref(), &context).await?;
    let secret = generate_admin_token();
    control
        .ensure_admin_token(&context, &secret, &[DEFAULT_ORG_ID.to_owned()], "bench")
        .await?;
    let principal = control.authenticate(&secret).await?;
    let host = control
        .create_host(
            &principal,
            &Context::admin(&principal, "bench-host"),
            None,
            CreateHost {
                org_id: None,
                prefix: "bench".into(),
                settings: None,
            },
        )
        .await?;

    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (control, principal, host_id) =
            (control.clone(), principal.clone(), host.host_id.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = histogram();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let context = Context::admin(&principal, &format!("w{w}-{n}"));
                let start = Instant::now();
                control
                    .add_human(
                        &principal,
                        &context,
                        None,
                        &host_id,
                        &format!("user{w}-{n}@bench.example"),
                    )
                    .await?;
                latencies
                    .record(start.elapsed().as_micros() as u64)
                    .expect("in range");
                n += 1;
            }
            anyhow::Ok((n, latencies))
        }));
    }
    let (total, latencies, elapsed) = join_writers(tasks, duration).await?;
    shutdown.cancel();
    running.await??;
    Ok(format!(
        "{:.0} commands/s | {} | {} | {} writers adding humans, {} commands; latency = call → read model updated",
        total as f64 / elapsed,
        ms(latencies.value_at_quantile(0.5)),
        ms(latencies.value_at_quantile(0.99)),
        writers,
        total
    ))
}
