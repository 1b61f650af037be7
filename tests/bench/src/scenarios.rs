//! The measured workloads. Each returns the tail of a markdown table row:
//! `result | p50 | p99 | notes`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use portcullis_store::{AppendError, CommandId, NewEvent, Subject, Version};

use crate::backend::Backend;

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
            let mut versions = vec![Version::NONE; 8];
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
    let started = Instant::now();
    let mut total = 0;
    let mut latencies = histogram();
    for task in tasks {
        let (n, h) = task.await??;
        total += n;
        latencies.add(h).expect("same bounds");
    }
    let elapsed = started.elapsed().max(duration).as_secs_f64();
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
    let started = Instant::now();
    let mut total = 0;
    let mut latencies = histogram();
    for task in tasks {
        let (n, h) = task.await??;
        total += n;
        latencies.add(h).expect("same bounds");
    }
    let elapsed = started.elapsed().max(duration).as_secs_f64();
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

/// Projection lag: placeholder until the projector lands.
pub async fn lag(_backend: &Backend, _events: usize, _rate: u32) -> anyhow::Result<String> {
    anyhow::bail!("not measured yet")
}
