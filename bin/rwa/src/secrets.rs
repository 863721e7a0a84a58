//! The development server secret: generated once into the data dir (mode 0600)
//! so tokens and HMACs survive restarts. Production refuses to start without
//! `RWA_SECRET_KEY` (see config validation), so this never runs there.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use rand::RngCore;

use crate::config::Secret;

const FILE: &str = "secret.key";

/// Reads the generated secret, creating it on first run.
pub fn development_secret(data_dir: &Path) -> anyhow::Result<Secret> {
    let path = data_dir.join(FILE);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim();
        if existing.len() >= 32 {
            return Ok(Secret::new(existing));
        }
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = hex::encode(bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(secret.as_bytes())?;
    tracing::info!(path = %path.display(), "generated a development secret key");
    Ok(Secret::new(secret))
}
