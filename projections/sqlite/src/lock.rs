//! The single-process guard: an exclusive advisory lock on `<store file>.lock`.
//!
//! Owns: taking the lock when a store opens and releasing it when the store is dropped (the
//! operating system releases it when the file closes, also when the process dies).
//!
//! Must not: delete the lock file (a process that opened it before the delete would lock a
//! different inode than the next one) or block waiting for the lock: a held lock is an error.
//!
//! Why a separate file: SQLite's own locks protect transactions, not ownership; two processes
//! writing one store would each believe their in-memory notifications cover every append.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::OpenError;

/// A held lock; dropping it closes the file and releases the lock.
#[derive(Debug)]
pub(crate) struct StoreLock {
    _file: File,
}

impl StoreLock {
    /// Takes the lock beside the store file at `store_path`, or says who holds it.
    pub(crate) fn acquire(store_path: &Path) -> Result<StoreLock, OpenError> {
        let lock_path = lock_path(store_path);
        let io_error = |source: std::io::Error| OpenError::LockFile {
            path: store_path.to_owned(),
            lock_path: lock_path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(OpenError::Locked {
                    path: store_path.to_owned(),
                    lock_path: lock_path.clone(),
                    holder: read_holder(&mut file),
                });
            }
            Err(TryLockError::Error(source)) => return Err(io_error(source)),
        }
        // The pid is only a hint for the error message of the next opener.
        file.set_len(0).map_err(io_error)?;
        file.seek(SeekFrom::Start(0)).map_err(io_error)?;
        writeln!(file, "{}", std::process::id()).map_err(io_error)?;
        Ok(StoreLock { _file: file })
    }
}

/// `<store file>.lock`, beside the store file.
fn lock_path(store_path: &Path) -> PathBuf {
    let mut path = store_path.as_os_str().to_owned();
    path.push(".lock");
    PathBuf::from(path)
}

/// The pid the holder wrote, if the file holds one.
fn read_holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}
