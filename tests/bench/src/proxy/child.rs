//! Processes the proxy benchmark starts itself (bench-upstream, nginx): separate OS processes
//! that die with the harness. Dropping a `ManagedChild` sends it its stop signal, waits a
//! little, then kills it; and each child gets that same signal from the kernel if the
//! harness dies first (parent-death signal), so a crashed run leaves nothing behind.

use std::io;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// How long a child may take to stop after its stop signal before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A child process stopped when dropped.
#[derive(Debug)]
pub struct ManagedChild {
    name: &'static str,
    child: Child,
    /// `SIGTERM` for nginx (its master then stops its workers), `SIGKILL` for processes with
    /// nothing to clean up.
    stop_signal: libc::c_int,
}

impl ManagedChild {
    /// Spawns `command`. Must run on the process's main thread: Linux sends the parent-death
    /// signal when the spawning *thread* exits, and only the main thread lives as long as the
    /// harness (`#[tokio::main]` runs its future there; tasks on worker threads do not).
    pub fn spawn(
        name: &'static str,
        mut command: Command,
        stop_signal: libc::c_int,
    ) -> anyhow::Result<ManagedChild> {
        anyhow::ensure!(
            std::thread::current().name() == Some("main"),
            "{name} must be started from the main thread (see ManagedChild::spawn)"
        );
        die_with_parent(&mut command, stop_signal);
        let child = command
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {name} ({:?}): {e}", command.get_program()))?;
        Ok(ManagedChild {
            name,
            child,
            stop_signal,
        })
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has already exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Its standard output, if piped and not yet taken.
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }
}

impl Drop for ManagedChild {
    fn drop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        if signal(self.child.id(), self.stop_signal).is_ok() {
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline {
                if self.exited().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        eprintln!("{} did not stop in {STOP_GRACE:?}; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// The workspace denies unsafe code; kill(2) has no safe wrapper in std for signals other than
// SIGKILL.
#[allow(unsafe_code)]
fn signal(pid: u32, signal: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours. The pid is our own
    // child, not yet waited for, so it cannot have been reused by another process.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

// The workspace denies unsafe code; `pre_exec` is the only way to set a parent-death signal.
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command, signal: libc::c_int) {
    use std::os::unix::process::CommandExt as _;
    let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
    let signal = libc::c_ulong::try_from(signal).unwrap_or(libc::SIGKILL as libc::c_ulong);
    // SAFETY: the closure runs in the forked child before exec. It only makes the
    // async-signal-safe calls prctl, getppid and _exit, and neither allocates nor takes locks.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal) != 0 {
                return Err(io::Error::last_os_error());
            }
            // If the harness died between fork and prctl, no signal will come.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}
