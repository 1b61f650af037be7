//! Tests of the report's tables.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use std::time::Duration;

use super::{Measured, Settings, render};
use crate::proxy::load::{FixedRate, Saturation, histogram};
use crate::proxy::target::{CpuTime, CpuUse, Memory};

fn measured(name: &str, known: bool) -> Measured {
    let mut latency = histogram();
    latency.record(250_000).unwrap();
    let cpu = CpuUse {
        own: CpuTime {
            user: Duration::from_millis(300),
            system: Duration::from_millis(100),
        },
        store: Duration::ZERO,
    };
    Measured {
        name: name.to_owned(),
        url: format!("http://127.0.0.1:1/{name}"),
        fixed: FixedRate {
            latency: latency.clone(),
            lag: histogram(),
            pacer_lag: histogram(),
            realtime: true,
            ok: 1_000,
            errors: Default::default(),
            elapsed: Duration::from_secs(1),
            cpu,
        },
        saturation: Saturation {
            latency,
            ok: 10_000,
            errors: Default::default(),
            elapsed: Duration::from_secs(1),
            cpu,
        },
        memory: known.then_some(Memory {
            processes: 1,
            rss_kib: 1024,
            hwm_kib: 1024,
            anon_kib: 512,
            file_kib: 512,
        }),
        cpu_known: known,
        has_store: false,
    }
}

fn settings() -> Settings {
    Settings {
        tool: "get_weather".to_owned(),
        rate: 1_000,
        connections: 32,
        concurrency: 64,
        seconds: 1,
        rounds: 1,
        warmup_seconds: 0,
    }
}

/// Cells of a markdown table row: `| a | b |` has two.
fn cells(line: &str) -> usize {
    line.matches('|').count() - 1
}

#[test]
fn every_row_has_as_many_cells_as_its_table_has_columns() {
    let rows = [
        measured("direct", true),
        measured("nginx", true),
        measured("external", false),
    ];
    let settings = settings();
    let report = render(&rows, &settings, "direct", "nginx");
    let mut columns = None;
    let mut rows_seen = 0;
    for line in report.lines() {
        if !line.starts_with('|') {
            columns = None;
            continue;
        }
        match columns {
            None => columns = Some(cells(line)),
            Some(n) => {
                assert_eq!(cells(line), n, "row {line:?} in a table of {n} columns");
                rows_seen += 1;
            }
        }
    }
    // Separator and three rows in each of the five tables.
    assert_eq!(rows_seen, 5 * 4, "{report}");
}

#[test]
fn cpu_a_call_is_split_into_user_and_kernel() {
    let settings = settings();
    let report = render(&[measured("gateway", true)], &settings, "direct", "nginx");
    // 0.4 s of CPU over 10,000 calls at saturation: 40 µs a call, 30 in user space, 10 in the
    // kernel; over 1,000 calls at the fixed rate, 400 µs.
    assert!(
        report.contains("| gateway | 0.40 | 400 | 0.40 | 40 | 30 / 10 | — |"),
        "{report}"
    );
    assert!(!report.contains("| gateway | unknown"), "{report}");
}
