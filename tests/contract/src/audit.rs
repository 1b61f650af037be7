//! The audit log's contract on a real backend: acknowledged records survive an abrupt restart,
//! concurrent appends land exactly once, queries filter by every field and never show another
//! host's records, pages run newest first without gaps or repeats while appends go on, and bad
//! input is refused without writing anything.
//!
//! Owns: the audit entry builders and `all_pages`, which follows cursors to the end. Must not:
//! know the backend. Decision times are near the real clock, as a data plane's are (the
//! JetStream backend bounds time-filtered queries by storage time, give or take its slack).

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use portcullis_store::{
    AuditDecision, AuditEntry, AuditError, AuditFilter, AuditLog, AuditPage, MAX_AUDIT_PAGE,
    MAX_AUDIT_RECORD_BYTES, RecordedAudit,
};

use crate::{Backend, STEP_TIMEOUT, step};

/// Milliseconds since the Unix epoch now.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// An entry of `host` with id `id`; its record bytes name it, so a mix-up shows.
pub fn audit_entry(host: &str, id: &str) -> AuditEntry {
    AuditEntry {
        record_id: id.to_owned(),
        host_id: host.to_owned(),
        time_ms: now_ms(),
        human_id: "human-1".to_owned(),
        agent_id: "agent-1".to_owned(),
        server_id: "server-1".to_owned(),
        tool: "read_file".to_owned(),
        decision: AuditDecision::Allowed,
        record: Bytes::from(format!("record {host}/{id}")),
    }
}

/// The record ids of a page, in order.
fn ids(records: &[RecordedAudit]) -> Vec<String> {
    records.iter().map(|r| r.entry.record_id.clone()).collect()
}

/// Follows `next` from the first page to the last with pages of `limit`; fails on a page that
/// is not strictly newest first.
pub async fn all_pages(
    audit: &dyn AuditLog,
    filter: &AuditFilter,
    limit: usize,
) -> Vec<RecordedAudit> {
    let mut records: Vec<RecordedAudit> = Vec::new();
    let mut cursor = None;
    loop {
        let page: AuditPage = step("audit query", audit.query(filter.clone(), limit, cursor))
            .await
            .unwrap();
        assert!(page.records.len() <= limit);
        assert!(
            page.next.is_none() || page.records.len() == limit,
            "a page with a next cursor is full"
        );
        records.extend(page.records);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert!(
        records.windows(2).all(|w| w[0].sequence > w[1].sequence),
        "newest first, no repeats"
    );
    records
}

/// Every acknowledged record is there after an abrupt restart, with the same sequence; a retry
/// of one is still recognized, and new records come after the old ones.
pub async fn an_acknowledged_audit_record_survives_a_restart(backend: &mut dyn Backend) {
    let before = backend.connect().await;
    let mut receipts = Vec::new();
    for i in 0..20 {
        let receipt = step(
            "audit append",
            before.audit.append(audit_entry("h1", &format!("r{i}"))),
        )
        .await
        .unwrap();
        assert!(!receipt.duplicate);
        receipts.push(receipt);
    }
    drop(before);

    step("restart", backend.restart()).await;

    let after = backend.connect().await;
    let page = step(
        "audit query",
        after.audit.query(AuditFilter::host("h1"), 50, None),
    )
    .await
    .unwrap();
    let expected: Vec<String> = (0..20).rev().map(|i| format!("r{i}")).collect();
    assert_eq!(ids(&page.records), expected);
    assert_eq!(page.next, None);
    let sequences: Vec<u64> = page.records.iter().map(|r| r.sequence).collect();
    let acknowledged: Vec<u64> = receipts.iter().rev().map(|r| r.sequence).collect();
    assert_eq!(sequences, acknowledged);
    assert_eq!(page.records[19].entry.record, Bytes::from("record h1/r0"));

    let retry = step("audit retry", after.audit.append(audit_entry("h1", "r5")))
        .await
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.sequence, receipts[5].sequence);
    let next = step("audit append", after.audit.append(audit_entry("h1", "r20")))
        .await
        .unwrap();
    assert!(next.sequence > receipts[19].sequence);
}

/// 200 appends racing from several clients each land exactly once with distinct sequences, and
/// retries of some of them (also racing) change nothing.
pub async fn concurrent_audit_appends_each_land_exactly_once(backend: &mut dyn Backend) {
    const APPENDS: usize = 200;
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(backend.connect().await.audit);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(APPENDS + 20));
    let mut tasks = Vec::new();
    for i in 0..APPENDS + 20 {
        // The last 20 are retries of the first 20, sent by another client.
        let id = format!("c{}", i % APPENDS);
        let audit = clients[i % clients.len()].clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            audit.append(audit_entry("h1", &id)).await.map(|r| (id, r))
        }));
    }
    let mut by_id = std::collections::HashMap::new();
    for task in tasks {
        let (id, receipt) = step("racing audit append", task).await.unwrap().unwrap();
        if let Some(earlier) = by_id.insert(id.clone(), receipt.sequence) {
            assert_eq!(
                earlier, receipt.sequence,
                "a retry of {id} got another sequence"
            );
        }
    }
    assert_eq!(by_id.len(), APPENDS);
    let sequences: HashSet<u64> = by_id.values().copied().collect();
    assert_eq!(sequences.len(), APPENDS, "one sequence per record");

    let stored = all_pages(&*clients[1], &AuditFilter::host("h1"), MAX_AUDIT_PAGE).await;
    assert_eq!(stored.len(), APPENDS, "each record stored exactly once");
    for record in &stored {
        assert_eq!(
            by_id.get(&record.entry.record_id),
            Some(&record.sequence),
            "{record:?}"
        );
    }
}

/// Every filter field narrows exactly; a host sees only its own records whatever else it
/// filters by; time bounds are inclusive.
pub async fn audit_queries_filter_by_every_field_and_never_leak_another_host(
    backend: &mut dyn Backend,
) {
    let stores = backend.connect().await;
    let base = now_ms() - 60_000;
    let humans = ["ada", "bob"];
    let agents = ["cli", "ide", "bot"];
    let servers = ["files", "mail"];
    let tools = ["read_file", "delete_file", "mail.send v2 ✓"];
    let mut appended = Vec::new();
    for host in ["h1", "h2"] {
        for i in 0..48 {
            let entry = AuditEntry {
                record_id: format!("{host}-r{i}"),
                host_id: host.to_owned(),
                // One second apart, all within the last minute.
                time_ms: base + i as i64 * 1000,
                human_id: humans[i % 2].to_owned(),
                agent_id: agents[i % 3].to_owned(),
                server_id: servers[(i / 2) % 2].to_owned(),
                tool: tools[(i / 3) % 3].to_owned(),
                decision: if i % 4 == 0 {
                    AuditDecision::Denied
                } else {
                    AuditDecision::Allowed
                },
                record: Bytes::from(format!("{host}-{i}")),
            };
            step("audit append", stores.audit.append(entry.clone()))
                .await
                .unwrap();
            appended.push(entry);
        }
    }
    // A record that knows nothing but its host: no filter on a field selects it.
    let anonymous = AuditEntry {
        human_id: String::new(),
        agent_id: String::new(),
        server_id: String::new(),
        tool: String::new(),
        decision: AuditDecision::Denied,
        ..audit_entry("h1", "h1-anonymous")
    };
    stores.audit.append(anonymous.clone()).await.unwrap();
    appended.push(anonymous);

    let mut filters = vec![AuditFilter::host("h1"), AuditFilter::host("h2")];
    for host in ["h1", "h2"] {
        let f = || AuditFilter::host(host);
        for human in humans {
            filters.push(AuditFilter {
                human_id: Some(human.into()),
                ..f()
            });
        }
        for agent in agents {
            filters.push(AuditFilter {
                agent_id: Some(agent.into()),
                ..f()
            });
        }
        for server in servers {
            filters.push(AuditFilter {
                server_id: Some(server.into()),
                ..f()
            });
        }
        for tool in tools {
            filters.push(AuditFilter {
                tool: Some(tool.into()),
                ..f()
            });
        }
        for decision in [AuditDecision::Allowed, AuditDecision::Denied] {
            filters.push(AuditFilter {
                decision: Some(decision),
                ..f()
            });
        }
        filters.push(AuditFilter {
            since_ms: Some(base + 10_000),
            until_ms: Some(base + 20_000),
            ..f()
        });
        filters.push(AuditFilter {
            since_ms: Some(base + 45_000),
            ..f()
        });
        filters.push(AuditFilter {
            until_ms: Some(base + 2_000),
            ..f()
        });
        filters.push(AuditFilter {
            human_id: Some("ada".into()),
            agent_id: Some("ide".into()),
            server_id: Some("files".into()),
            tool: Some("delete_file".into()),
            decision: Some(AuditDecision::Allowed),
            since_ms: Some(base),
            until_ms: Some(base + 47_000),
            ..f()
        });
        filters.push(AuditFilter {
            human_id: Some("nobody".into()),
            ..f()
        });
    }
    // A host that wrote nothing.
    filters.push(AuditFilter::host("h3"));

    for filter in &filters {
        let got = all_pages(&*stores.audit, filter, 7).await;
        let mut expected: Vec<String> = appended
            .iter()
            .filter(|e| filter.matches(e))
            .map(|e| e.record_id.clone())
            .collect();
        expected.reverse();
        assert_eq!(ids(&got), expected, "{filter:?}");
        assert!(
            got.iter().all(|r| r.entry.host_id == filter.host_id),
            "{filter:?} leaked another host"
        );
        for record in &got {
            let original = appended
                .iter()
                .find(|e| e.record_id == record.entry.record_id && e.host_id == filter.host_id)
                .expect("an appended record");
            assert_eq!(&record.entry, original, "stored as appended");
        }
    }
    // The combined filter selects something, so the test is not vacuous.
    let some = AuditFilter {
        human_id: Some("ada".into()),
        tool: Some("mail.send v2 ✓".into()),
        ..AuditFilter::host("h1")
    };
    assert!(!all_pages(&*stores.audit, &some, 3).await.is_empty());
}

/// Following cursors pages newest first through every record that existed when the first page
/// was read, exactly once, while another client keeps appending.
pub async fn audit_pages_have_no_gaps_or_repeats_while_appends_continue(backend: &mut dyn Backend) {
    let stores = backend.connect().await;
    let writer = backend.connect().await;
    for i in 0..120 {
        step(
            "audit append",
            stores.audit.append(audit_entry("h1", &format!("old{i}"))),
        )
        .await
        .unwrap();
        // Another host's records interleaved, so windows hold records of both.
        if i % 3 == 0 {
            stores
                .audit
                .append(audit_entry("h2", &format!("other{i}")))
                .await
                .unwrap();
        }
    }

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let appender = {
        let stop = stop.clone();
        let audit = writer.audit.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                audit
                    .append(audit_entry("h1", &format!("new{n}")))
                    .await
                    .unwrap();
                n += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            n
        })
    };
    // Let some new records land before the first page, and more during the paging.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let paged = all_pages(&*stores.audit, &AuditFilter::host("h1"), 9).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = step("appender", appender).await.unwrap();
    assert!(written > 0, "the appender ran");

    // Exactly the records at or below the first page's newest, in order.
    let newest = paged.first().expect("records").sequence;
    let everything = all_pages(&*stores.audit, &AuditFilter::host("h1"), MAX_AUDIT_PAGE).await;
    let expected: Vec<String> = ids(&everything
        .into_iter()
        .filter(|r| r.sequence <= newest)
        .collect::<Vec<_>>());
    assert_eq!(ids(&paged), expected);
    let olds: BTreeSet<String> = ids(&paged)
        .into_iter()
        .filter(|id| id.starts_with("old"))
        .collect();
    assert_eq!(olds.len(), 120, "every old record exactly once");
}

/// Records far below many newer records of other hosts, and a host whose old records are dense
/// under a sparse recent stretch, are still found, page after page.
pub async fn a_query_finds_a_hosts_records_under_many_of_other_hosts(backend: &mut dyn Backend) {
    let clients = [backend.connect().await, backend.connect().await];
    let append_many = |host: &'static str, prefix: &'static str, n: usize| {
        let clients = clients.clone();
        async move {
            let tasks: Vec<_> = (0..n)
                .map(|i| {
                    let audit = clients[i % 2].audit.clone();
                    tokio::spawn(async move {
                        audit
                            .append(audit_entry(host, &format!("{prefix}{i}")))
                            .await
                            .unwrap()
                    })
                })
                .collect();
            for task in tasks {
                step("audit append", task).await.unwrap();
            }
        }
    };
    append_many("h1", "dense", 300).await;
    append_many("h2", "noise", 1200).await;
    append_many("h1", "recent", 5).await;

    let found = all_pages(&*clients[0].audit, &AuditFilter::host("h1"), 20).await;
    assert_eq!(found.len(), 305);
    assert!(
        found[..5]
            .iter()
            .all(|r| r.entry.record_id.starts_with("recent"))
    );
    let distinct: HashSet<String> = ids(&found).into_iter().collect();
    assert_eq!(distinct.len(), 305);
    let none = all_pages(&*clients[1].audit, &AuditFilter::host("h9"), 20).await;
    assert!(none.is_empty());
    let first_page = step(
        "audit query",
        clients[1].audit.query(AuditFilter::host("h2"), 50, None),
    )
    .await
    .unwrap();
    assert_eq!(first_page.records.len(), 50);
    assert!(first_page.next.is_some());
}

/// Malformed entries and queries are typed errors, and no rejected entry is stored.
pub async fn bad_audit_input_is_rejected_and_writes_nothing(backend: &mut dyn Backend) {
    let stores = backend.connect().await;
    type Spoil = fn(&mut AuditEntry);
    let bad: Vec<(&str, Spoil)> = vec![
        ("empty host", |e| e.host_id.clear()),
        ("wildcard host", |e| e.host_id = "h1.*".into()),
        ("empty record id", |e| e.record_id.clear()),
        ("long id", |e| e.human_id = "x".repeat(65)),
        ("dotted agent", |e| e.agent_id = "a.b".into()),
        ("tool with newline", |e| {
            e.tool = "read\r\nNats-Msg-Id: x".into()
        }),
        ("long tool", |e| e.tool = "t".repeat(129)),
        ("no time", |e| e.time_ms = 0),
        ("oversized record", |e| {
            e.record = Bytes::from(vec![b'x'; MAX_AUDIT_RECORD_BYTES + 1])
        }),
    ];
    for (what, change) in bad {
        let mut entry = audit_entry("h1", "bad");
        change(&mut entry);
        let err = step("bad audit append", stores.audit.append(entry))
            .await
            .unwrap_err();
        assert!(
            matches!(err, AuditError::Rejected { .. }),
            "{what}: {err:?}"
        );
    }
    let invalid = |result: Result<AuditPage, AuditError>| {
        let err = result.unwrap_err();
        assert!(matches!(err, AuditError::InvalidQuery { .. }), "{err:?}");
    };
    invalid(stores.audit.query(AuditFilter::host(""), 10, None).await);
    invalid(stores.audit.query(AuditFilter::host("h1"), 0, None).await);
    invalid(
        stores
            .audit
            .query(AuditFilter::host("h1"), MAX_AUDIT_PAGE + 1, None)
            .await,
    );
    invalid(
        stores
            .audit
            .query(
                AuditFilter {
                    agent_id: Some("a>".into()),
                    ..AuditFilter::host("h1")
                },
                10,
                None,
            )
            .await,
    );

    // Nothing was written; the largest record allowed still is.
    let page = step(
        "audit query",
        stores.audit.query(AuditFilter::host("h1"), 10, None),
    )
    .await
    .unwrap();
    assert!(page.records.is_empty(), "{page:?}");
    let mut largest = audit_entry("h1", "largest");
    largest.record = Bytes::from(vec![b'y'; MAX_AUDIT_RECORD_BYTES]);
    step("audit append", stores.audit.append(largest.clone()))
        .await
        .unwrap();
    let page = tokio::time::timeout(
        STEP_TIMEOUT,
        stores.audit.query(AuditFilter::host("h1"), 10, None),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(ids(&page.records), ["largest"]);
    assert_eq!(page.records[0].entry, largest);
}
