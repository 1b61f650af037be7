//! Tests of the audit wire form: subjects and filters, headers and their decoding, the time
//! format sent to the server, and the audit stream settings check. The behaviour against a
//! real server is the contract suite's (`tests/contract`).
#![allow(clippy::unwrap_used)] // a failed unwrap is the test failure

use super::*;

fn entry() -> AuditEntry {
    AuditEntry {
        record_id: "01JD3ZQ5V4M7W2".to_owned(),
        host_id: "acme-1".to_owned(),
        time_ms: 1_760_000_000_123,
        human_id: "hum_1".to_owned(),
        agent_id: "agent-1".to_owned(),
        server_id: "srv1".to_owned(),
        tool: "bulk_delete_users".to_owned(),
        decision: AuditDecision::Denied,
        record: Bytes::from_static(b"\x0a\x01x"),
    }
}

fn stored(entry: &AuditEntry) -> Stored {
    Stored {
        sequence: 7,
        subject: wire_subject("ns.audit", entry),
        headers: entry_headers(entry),
        payload: entry.record.clone(),
    }
}

#[test]
fn every_filterable_field_is_a_subject_token() {
    assert_eq!(
        wire_subject("ns.audit", &entry()),
        "ns.audit.acme-1.denied.srv1.hum_1.agent-1.bulk_delete_users"
    );
    let mut anonymous = entry();
    anonymous.human_id.clear();
    anonymous.agent_id.clear();
    anonymous.server_id.clear();
    anonymous.tool.clear();
    anonymous.decision = AuditDecision::Allowed;
    assert_eq!(
        wire_subject("ns.audit", &anonymous),
        "ns.audit.acme-1.allowed._._._._"
    );
}

#[test]
fn a_tool_that_is_not_a_plain_token_is_hashed_stably() {
    let hashed = token("files.read v2 ✓");
    assert!(hashed.starts_with('~') && hashed.len() == 17, "{hashed}");
    assert_eq!(hashed, token("files.read v2 ✓"), "stable");
    assert_ne!(hashed, token("files.read v3 ✓"));
    // Known FNV-1a 64 vectors, so the stored form never changes by accident.
    assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(token("_"), format!("~{:016x}", fnv1a(b"_")));
    assert_eq!(token(&"x".repeat(65)).len(), 17);
    assert_eq!(token("plain-Tool_1"), "plain-Tool_1");
}

#[test]
fn a_filter_narrows_by_every_field_it_sets() {
    let host_only = AuditFilter::host("acme-1");
    assert_eq!(wire_filter("ns.audit", &host_only), "ns.audit.acme-1.>");
    let some = AuditFilter {
        human_id: Some("hum_1".into()),
        tool: Some("a.b".into()),
        decision: Some(AuditDecision::Allowed),
        ..AuditFilter::host("acme-1")
    };
    assert_eq!(
        wire_filter("ns.audit", &some),
        format!("ns.audit.acme-1.allowed.*.hum_1.*.{}", token("a.b"))
    );
    // Time bounds are not in the subject.
    let timed = AuditFilter {
        since_ms: Some(1),
        ..AuditFilter::host("acme-1")
    };
    assert_eq!(wire_filter("ns.audit", &timed), "ns.audit.acme-1.>");
}

#[test]
fn a_stored_record_decodes_to_the_entry_appended() {
    for tool in ["bulk_delete_users", "files.read v2 ✓", ""] {
        let mut e = entry();
        e.tool = tool.to_owned();
        let decoded = decode(&Names::new("ns"), stored(&e)).unwrap();
        assert_eq!(decoded.sequence, 7);
        assert_eq!(decoded.entry, e);
    }
}

#[test]
fn a_record_whose_subject_disagrees_with_its_headers_is_corrupt() {
    let names = Names::new("ns");
    let mut moved = stored(&entry());
    moved.subject = moved.subject.replace("acme-1", "acme-2");
    assert!(matches!(
        decode(&names, moved),
        Err(AuditError::Corrupt { sequence: 7, .. })
    ));
    let mut forged = stored(&entry());
    forged.headers.insert(HOST_HEADER, "acme-2");
    assert!(matches!(
        decode(&names, forged),
        Err(AuditError::Corrupt { .. })
    ));
    let mut missing = stored(&entry());
    missing.headers = HeaderMap::new();
    assert!(matches!(
        decode(&names, missing),
        Err(AuditError::Corrupt { .. })
    ));
    let mut bad_time = stored(&entry());
    bad_time.headers.insert(TIME_HEADER, "soon");
    assert!(matches!(
        decode(&names, bad_time),
        Err(AuditError::Corrupt { .. })
    ));
}

#[test]
fn times_are_sent_as_rfc3339_utc() {
    assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339_utc(-5), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339_utc(1_760_000_000_123), "2025-10-09T08:53:20.123Z");
    assert_eq!(rfc3339_utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
    assert_eq!(rfc3339_utc(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
}

fn wanted() -> StreamConfig {
    let config = JetStreamConfig::new(["nats://127.0.0.1:4222"]);
    wanted_audit_stream(&Names::new("acme"), 3, &AuditSettings::new(&config))
}

#[test]
fn the_audit_stream_keeps_records_ninety_days_and_never_deletes_one_otherwise() {
    let wanted = wanted();
    assert_eq!(wanted.name, "ACME_AUDIT");
    assert_eq!(wanted.subjects, ["acme.audit.>"]);
    assert_eq!(wanted.max_age, Duration::from_secs(90 * 24 * 3600));
    assert_eq!(wanted.discard, DiscardPolicy::Old);
    assert_eq!(wanted.num_replicas, 3);
    assert!(wanted.deny_delete && wanted.deny_purge && wanted.allow_direct);
    assert_eq!(wanted.storage, StorageType::File);
}

#[test]
fn audit_stream_settings_that_differ_are_named() {
    let check = |change: fn(&mut StreamConfig), expected: &[&str]| {
        let mut actual = wanted();
        actual.max_messages = -1;
        actual.max_bytes = -1;
        actual.max_messages_per_subject = -1;
        change(&mut actual);
        let differences = crate::connect::stream_differences(&wanted(), &actual);
        let names: Vec<&str> = differences
            .iter()
            .map(|d| d.split(':').next().unwrap_or_default())
            .collect();
        assert_eq!(names, expected, "{differences:?}");
    };
    check(|_| {}, &[]);
    check(|c| c.max_age = Duration::ZERO, &["max_age"]);
    check(|c| c.allow_direct = false, &["allow_direct"]);
    check(|c| c.discard = DiscardPolicy::New, &["discard"]);
    check(|c| c.num_replicas = 1, &["replicas"]);
    check(
        |c| {
            c.max_bytes = 1 << 30;
            c.deny_purge = false;
        },
        &["deny_purge", "max_bytes"],
    );
    check(|c| c.sealed = true, &["sealed"]);
}

// ---------------------------------------------------------------------------------------
// The window algorithm against a fake stream
// ---------------------------------------------------------------------------------------

/// A stream as the window algorithm sees it: the sequences of the records matching the
/// query's subject filter, a replica that has applied only some of them, and counters.
struct FakeStream {
    /// Matching sequences, ascending, as the leader has them.
    matches: Vec<u64>,
    /// The replica answering direct gets has applied sequences up to this one.
    replica_applied: u64,
    /// Whether any replica answers direct gets at all.
    direct: bool,
    requests: std::sync::atomic::AtomicUsize,
    leader_requests: std::sync::atomic::AtomicUsize,
    records_sent: std::sync::atomic::AtomicUsize,
}

impl FakeStream {
    fn new(matches: Vec<u64>) -> FakeStream {
        FakeStream {
            matches,
            replica_applied: u64::MAX,
            direct: true,
            requests: Default::default(),
            leader_requests: Default::default(),
            records_sent: Default::default(),
        }
    }

    fn count(counter: &std::sync::atomic::AtomicUsize) -> usize {
        counter.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn add(counter: &std::sync::atomic::AtomicUsize, n: usize) {
        counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
}

fn fake_record(sequence: u64) -> Stored {
    Stored {
        sequence,
        subject: String::new(),
        headers: HeaderMap::new(),
        payload: Bytes::new(),
    }
}

impl WindowSource for FakeStream {
    fn direct_batch(
        &self,
        start: u64,
        batch: usize,
    ) -> impl Future<Output = Result<Batch, AuditError>> + Send {
        Self::add(&self.requests, 1);
        let answer = if !self.direct {
            Batch {
                no_responders: true,
                ..Batch::default()
            }
        } else {
            let visible: Vec<u64> = self
                .matches
                .iter()
                .copied()
                .filter(|&s| s >= start && s <= self.replica_applied)
                .collect();
            Self::add(&self.records_sent, visible.len().min(batch));
            Batch {
                first_pending: (!visible.is_empty()).then(|| visible.len() as u64 - 1),
                none: visible.is_empty(),
                messages: visible.into_iter().take(batch).map(fake_record).collect(),
                no_responders: false,
            }
        };
        async move { Ok(answer) }
    }

    fn leader_next(
        &self,
        start: u64,
    ) -> impl Future<Output = Result<Option<Stored>, AuditError>> + Send {
        Self::add(&self.leader_requests, 1);
        let next = self.matches.iter().copied().find(|&s| s >= start);
        async move { Ok(next.map(fake_record)) }
    }
}

/// Runs the algorithm and checks its answer against a brute-force one: the newest matching
/// records below `hi` and at or above `floor` that `keep` accepts, in order, none skipped.
fn check_collect(stream: &FakeStream, floor: u64, hi: u64, want: usize, keep: fn(u64) -> bool) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let got = runtime
        .block_on(collect_newest(stream, floor, hi, want, |s| {
            Ok(keep(s.sequence).then_some(s.sequence))
        }))
        .unwrap();
    let expected: Vec<u64> = stream
        .matches
        .iter()
        .rev()
        .copied()
        .filter(|&s| s < hi && s >= floor && keep(s))
        .collect();
    if expected.len() <= want {
        assert_eq!(got, expected, "floor {floor} hi {hi} want {want}");
    } else {
        assert!(got.len() >= want, "floor {floor} hi {hi} want {want}");
        assert_eq!(
            got[..],
            expected[..got.len()],
            "floor {floor} hi {hi} want {want}"
        );
    }
}

/// xorshift64*, so the scenarios are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[test]
fn windows_find_exactly_the_newest_matches_whatever_the_density_and_lag() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let densities = [0.0, 0.001, 0.01, 0.1, 0.5, 1.0];
    for scenario in 0..400 {
        // A stream of segments, each with its own share of matching records.
        let length = 1 + rng.below(6000);
        let mut matches = Vec::new();
        let mut sequence = 1;
        while sequence <= length {
            let segment = 1 + rng.below(length / 2 + 1);
            let density = densities[rng.below(densities.len() as u64) as usize];
            for s in sequence..(sequence + segment).min(length + 1) {
                if (rng.below(1_000_000) as f64) < density * 1_000_000.0 {
                    matches.push(s);
                }
            }
            sequence += segment;
        }
        let mut stream = FakeStream::new(matches);
        match scenario % 4 {
            0 => {}
            1 => stream.replica_applied = length.saturating_sub(rng.below(50)),
            2 => stream.replica_applied = rng.below(length + 1),
            _ => stream.direct = rng.below(4) != 0,
        }
        let want = [1, 2, 11, 51, 501][rng.below(5) as usize];
        let hi = 1 + rng.below(length + 1);
        let floor = 1 + rng.below(hi);
        let keep: fn(u64) -> bool = if scenario % 3 == 0 {
            |s| s % 7 != 0
        } else {
            |_| true
        };
        check_collect(&stream, floor, hi, want, keep);
    }
}

#[test]
fn a_page_of_fifty_over_a_hundred_thousand_records_of_one_host_takes_one_request() {
    let stream = FakeStream::new((1..=100_000).collect());
    check_collect(&stream, 1, 100_001, 51, |_| true);
    assert_eq!(FakeStream::count(&stream.requests), 1);
    assert_eq!(FakeStream::count(&stream.leader_requests), 0);
    assert!(FakeStream::count(&stream.records_sent) <= 102);
}

#[test]
fn a_host_with_one_record_in_a_hundred_needs_a_few_windows() {
    let stream = FakeStream::new((1..=100_000).filter(|s| s % 100 == 0).collect());
    check_collect(&stream, 1, 100_001, 51, |_| true);
    let requests = FakeStream::count(&stream.requests);
    assert!(requests <= 8, "{requests} requests");
    assert_eq!(FakeStream::count(&stream.leader_requests), 0);
    assert!(FakeStream::count(&stream.records_sent) <= 4 * 51 + 64);
}

#[test]
fn dense_old_records_under_a_long_quiet_stretch_are_not_all_read() {
    // 50k records of the host, then 950k of others, then 3 of the host.
    let mut matches: Vec<u64> = (1..=50_000).collect();
    matches.extend([999_998, 999_999, 1_000_000]);
    let stream = FakeStream::new(matches);
    check_collect(&stream, 1, 1_000_001, 51, |_| true);
    let sent = FakeStream::count(&stream.records_sent);
    assert!(sent < 600, "read {sent} records for a page of 50");
    let requests = FakeStream::count(&stream.requests);
    assert!(requests < 40, "{requests} requests");
}

#[test]
fn a_lagging_replica_is_caught_by_the_leader() {
    let mut stream = FakeStream::new((1..=200).collect());
    stream.replica_applied = 190;
    check_collect(&stream, 1, 201, 51, |_| true);
    assert!(FakeStream::count(&stream.leader_requests) >= 10);
    let mut silent = FakeStream::new((1..=30).map(|s| s * 3).collect());
    silent.direct = false;
    check_collect(&silent, 1, 91, 11, |_| true);
}
