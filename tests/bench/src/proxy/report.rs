//! The proxy benchmark's report: markdown tables, one row per target, then each proxy's cost
//! over the direct path and its throughput next to nginx's, all from the same run.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::load::{Errors, FixedRate, Saturation};
use super::target::Memory;

/// Everything measured for one target.
#[derive(Debug)]
pub struct Measured {
    pub name: String,
    pub url: String,
    pub fixed: FixedRate,
    pub saturation: Saturation,
    /// `None` when the target's processes are unknown (an external process without `--*-pid`).
    pub memory: Option<Memory>,
    /// Whether the target's processes are known, so its CPU time was measured.
    pub cpu_known: bool,
    /// Whether the target has store processes of its own (a data plane's NATS and projector).
    pub has_store: bool,
}

/// The settings the tables' headings state.
#[derive(Debug)]
pub struct Settings {
    pub tool: String,
    pub rate: u32,
    pub connections: usize,
    pub concurrency: usize,
    pub seconds: u64,
    pub rounds: u32,
    pub warmup_seconds: u64,
}

/// The report as markdown. `direct` and `nginx` name the reference rows.
pub fn render(rows: &[Measured], settings: &Settings, direct: &str, nginx: &str) -> String {
    let mut out = String::new();
    let Settings {
        tool,
        rate,
        connections,
        concurrency,
        seconds,
        rounds,
        warmup_seconds,
    } = settings;
    let span = if *rounds > 1 {
        format!("{seconds} s in each of {rounds} interleaved rounds")
    } else {
        format!("{seconds} s")
    };
    let _ = writeln!(
        out,
        "\n### Fixed rate: {rate} calls/s of `tools/call {tool}` for {span} over {connections} \
         keep-alive connections (after {warmup_seconds} s of warm-up); latency from the intended \
         send time\n"
    );
    out.push_str("| target | calls | achieved | p50 | p90 | p99 | p99.9 | max | errors |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for row in rows {
        let f = &row.fixed;
        let _ = writeln!(
            out,
            "| {} | {} | {:.0}/s | {} | {} | {} | {} | {} | {} |",
            row.name,
            f.ok,
            f.ok as f64 / f.elapsed.as_secs_f64(),
            ms(f.latency.value_at_quantile(0.5)),
            ms(f.latency.value_at_quantile(0.9)),
            ms(f.latency.value_at_quantile(0.99)),
            ms(f.latency.value_at_quantile(0.999)),
            ms(f.latency.max()),
            errors(&f.errors),
        );
    }
    if let Some(row) = rows.first() {
        let _ = writeln!(
            out,
            "\nHarness delay (intended → actual send) while measuring {}: p50 {}, p99 {} (the pacer \
             thread's own wake-up: p50 {}, p99 {}; real-time priority: {}); it is part of every \
             row's latency.",
            row.name,
            ms(row.fixed.lag.value_at_quantile(0.5)),
            ms(row.fixed.lag.value_at_quantile(0.99)),
            ms(row.fixed.pacer_lag.value_at_quantile(0.5)),
            ms(row.fixed.pacer_lag.value_at_quantile(0.99)),
            if row.fixed.realtime { "yes" } else { "no" },
        );
    }

    let _ = writeln!(
        out,
        "\n### Saturation: {concurrency} connections calling back to back for {span} \
         (after {warmup_seconds} s of warm-up)\n"
    );
    out.push_str("| target | calls/s | p50 | p99 | errors |\n|---|---|---|---|---|\n");
    for row in rows {
        let s = &row.saturation;
        let _ = writeln!(
            out,
            "| {} | {:.0} | {} | {} | {} |",
            row.name,
            s.calls_per_second(),
            ms(s.latency.value_at_quantile(0.5)),
            ms(s.latency.value_at_quantile(0.99)),
            errors(&s.errors),
        );
    }

    let direct = rows.iter().find(|r| r.name == direct);
    let nginx = rows.iter().find(|r| r.name == nginx);
    let _ = writeln!(out, "\n### Cost of each hop (same run)\n");
    let _ = writeln!(
        out,
        "| target | added p50 at {rate}/s | added p99 at {rate}/s | saturation calls/s vs nginx |"
    );
    out.push_str("|---|---|---|---|\n");
    for row in rows {
        let (added_p50, added_p99) = match direct {
            Some(d) if d.name != row.name => (
                added(&row.fixed.latency, &d.fixed.latency, 0.5),
                added(&row.fixed.latency, &d.fixed.latency, 0.99),
            ),
            _ => ("—".to_owned(), "—".to_owned()),
        };
        let ratio = nginx.map_or_else(
            || "—".to_owned(),
            |n| {
                format!(
                    "{:.2}×",
                    row.saturation.calls_per_second() / n.saturation.calls_per_second()
                )
            },
        );
        let _ = writeln!(
            out,
            "| {} | {added_p50} | {added_p99} | {ratio} |",
            row.name
        );
    }

    let _ = writeln!(
        out,
        "\n### CPU while measured (user + system of the process and its children)\n"
    );
    let _ = writeln!(
        out,
        "| target | CPUs at {rate}/s | µs a call at {rate}/s | CPUs at saturation | µs a call at saturation | of it user / kernel | its store's processes (NATS, projector): CPUs at {rate}/s / at saturation |"
    );
    out.push_str("|---|---|---|---|---|---|---|\n");
    for row in rows {
        if !row.cpu_known {
            let _ = writeln!(
                out,
                "| {} | unknown (no pid given) | — | — | — | — | — |",
                row.name
            );
            continue;
        }
        let (fixed, saturation) = (&row.fixed, &row.saturation);
        let store = if row.has_store {
            format!(
                "{} / {}",
                cpus(fixed.cpu.store, fixed.elapsed),
                cpus(saturation.cpu.store, saturation.elapsed)
            )
        } else {
            "—".to_owned()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} / {} | {store} |",
            row.name,
            cpus(fixed.cpu.own.total(), fixed.elapsed),
            per_call(fixed.cpu.own.total(), fixed.ok),
            cpus(saturation.cpu.own.total(), saturation.elapsed),
            per_call(saturation.cpu.own.total(), saturation.ok),
            per_call(saturation.cpu.own.user, saturation.ok),
            per_call(saturation.cpu.own.system, saturation.ok),
        );
    }

    let _ = writeln!(
        out,
        "\n### Memory at the end of the run (process and its children)\n"
    );
    out.push_str(
        "| target | processes | VmRSS | of it anonymous | of it mapped files | VmHWM |\n\
         |---|---|---|---|---|---|\n",
    );
    for row in rows {
        match row.memory {
            Some(m) => {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} |",
                    row.name,
                    m.processes,
                    mib(m.rss_kib),
                    mib(m.anon_kib),
                    mib(m.file_kib),
                    mib(m.hwm_kib)
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "| {} | unknown (no pid given) | — | — | — | — |",
                    row.name
                );
            }
        }
    }
    let _ = writeln!(out, "\nEndpoints:");
    for row in rows {
        let _ = writeln!(out, "- {}: {}", row.name, row.url);
    }
    out
}

fn ms(nanos: u64) -> String {
    format!("{:.3} ms", nanos as f64 / 1e6)
}

/// CPU time over wall time: how many cores were busy on average.
fn cpus(cpu: Duration, wall: Duration) -> String {
    if wall.is_zero() {
        return "—".to_owned();
    }
    format!("{:.2}", cpu.as_secs_f64() / wall.as_secs_f64())
}

/// CPU time a successful call, in microseconds.
fn per_call(cpu: Duration, calls: u64) -> String {
    if calls == 0 {
        return "—".to_owned();
    }
    format!("{:.0}", cpu.as_secs_f64() * 1e6 / calls as f64)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn added(row: &Histogram<u64>, direct: &Histogram<u64>, quantile: f64) -> String {
    let delta = row.value_at_quantile(quantile) as f64 - direct.value_at_quantile(quantile) as f64;
    format!("{:+.3} ms", delta / 1e6)
}

fn errors(errors: &Errors) -> String {
    let total: u64 = errors.values().sum();
    if total == 0 {
        return "0".to_owned();
    }
    let kinds: Vec<String> = errors.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    format!("{total} ({})", kinds.join(", "))
}

#[cfg(test)]
mod tests;
