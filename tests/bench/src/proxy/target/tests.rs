//! Tests of the CPU accounting the report's CPU table rests on.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use std::time::{Duration, Instant};

use super::{CpuTime, cpu_time, stat_ticks};

#[test]
fn ticks_are_read_after_a_command_name_with_spaces_and_parentheses() {
    // utime 1234 and stime 56 in fields 14 and 15; the name would shift a naive split.
    let stat = "4242 (tokio (rt) worker) S 1 4242 4242 0 -1 4194560 2195 0 0 0 1234 56 0 0 20 0 \
                5 0 123456 1000000 2000 18446744073709551615";
    assert_eq!(stat_ticks(stat), Some((1234, 56)));
}

#[test]
fn a_truncated_or_garbled_stat_gives_nothing() {
    assert_eq!(stat_ticks("4242 (short) S 1 2 3"), None);
    assert_eq!(stat_ticks("no parenthesis at all"), None);
    assert_eq!(
        stat_ticks("4242 (x) S 1 4242 4242 0 -1 4194560 2195 0 0 0 lots 56"),
        None
    );
}

#[test]
fn this_process_is_charged_for_the_work_it_does() {
    let me = [std::process::id()];
    let before = cpu_time(&me).unwrap();
    // Arithmetic the optimizer cannot drop, until 0.2 s of CPU is charged; on a busy machine
    // that takes longer, so the bound is generous.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut x = 0u64;
    loop {
        let slice = Instant::now();
        while slice.elapsed() < Duration::from_millis(10) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let used = cpu_time(&me).unwrap().since(before);
        if used.total() >= Duration::from_millis(200) {
            // Arithmetic is user time: most of what was charged must be there.
            assert!(
                used.user >= used.system,
                "user-space arithmetic was charged as {used:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a minute of work was charged {used:?}"
        );
    }
}

#[test]
fn no_processes_and_gone_processes_count_as_nothing() {
    assert_eq!(cpu_time(&[]).unwrap(), CpuTime::default());
    // Above the kernel's largest pid (4,194,304), so never a live process.
    assert_eq!(cpu_time(&[u32::MAX - 1]).unwrap(), CpuTime::default());
}
