//! One `rwa serve` per single-process resource. A SQLite database and the
//! embedded devnet belong to one process: two servers on the same files would
//! both send for the same signers (two transaction managers each believing it
//! holds the nonces) and both mine the devnet. `rwa serve` therefore takes an
//! exclusive lock on a file beside each such resource and refuses to start
//! while another process holds it. The lock is the operating system's
//! (`flock`): it is released when the process exits, however it exits, so a
//! crash never leaves a stale lock behind. The other commands (`org create`,
//! `keys create`, `jobs`, `audit verify`, `migrate`) take no lock and keep
//! working beside a running server.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::Config;

/// Locks held for the life of the server; dropping them releases the files.
#[derive(Debug)]
pub struct ProcessLocks {
    _files: Vec<File>,
}

/// The files this server must own alone: the SQLite database (when the
/// database is SQLite) and the embedded devnet's (when no node is configured).
fn resources(config: &Config) -> Vec<PathBuf> {
    let mut owned = Vec::new();
    if let Some(path) = rwa_store::sqlite_file(config.database.url.expose()) {
        owned.push(path);
    }
    if config.chain.rpc_url.is_none() {
        owned.push(config.data_dir.join("devnet.db"));
    }
    owned
}

fn lock_path(resource: &Path) -> PathBuf {
    let mut name = resource.file_name().unwrap_or_default().to_os_string();
    name.push(".serve.lock");
    resource.with_file_name(name)
}

/// Takes every lock, or explains which resource another server holds.
pub fn acquire(config: &Config) -> anyhow::Result<ProcessLocks> {
    let mut files = Vec::new();
    for resource in resources(config) {
        let path = lock_path(&resource);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => files.push(file),
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "another rwa serve is already running on {} (it holds {}); SQLite and the \
                 embedded devnet serve one process: stop the other server, or use \
                 PostgreSQL and RWA_CHAIN_RPC_URL to run several",
                resource.display(),
                path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
    }
    Ok(ProcessLocks { _files: files })
}
