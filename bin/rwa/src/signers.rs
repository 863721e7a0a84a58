//! The signer of each lane, from configuration: `RWA_SIGNER_{LANE}_KEY` when
//! set, else the default signer (`RWA_SIGNER_KEY` or the keystore), else —
//! in development only, where configuration does not demand a key — the
//! development key generated into the data dir and funded at devnet genesis.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rwa_chain::signer::LocalSigner;
use rwa_domain::tx::{Lane, Signer};

use crate::config::{Secret, SignerConfig};

/// The development key's file in the data dir.
pub fn development_key_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("dev-signer.key")
}

/// One signer per lane; lanes without their own key share the default one
/// (and so its nonce sequence).
pub fn lane_signers(
    config: &SignerConfig,
    data_dir: &Path,
) -> anyhow::Result<Vec<(Lane, Arc<dyn Signer>)>> {
    let default: Arc<dyn Signer> = match (&config.key, &config.keystore) {
        (Some(key), _) => Arc::new(from_secret("RWA_SIGNER_KEY", key)?),
        (None, Some(path)) => {
            let password = config
                .password
                .as_ref()
                .context("RWA_SIGNER_PASSWORD: required with RWA_SIGNER_KEYSTORE")?;
            Arc::new(
                LocalSigner::from_keystore(path, password.expose())
                    .context("RWA_SIGNER_KEYSTORE")?,
            )
        }
        (None, None) => Arc::new(
            LocalSigner::development_key(&development_key_path(data_dir))
                .context("development signer key")?,
        ),
    };
    lane_keys(config)
        .into_iter()
        .map(|(lane, var, key)| {
            let signer: Arc<dyn Signer> = match key {
                Some(key) => Arc::new(from_secret(var, key)?),
                None => default.clone(),
            };
            Ok((lane, signer))
        })
        .collect()
}

/// Which key signs for each lane and, where it can be told without side
/// effects (no decryption, no key generation), its address: what an operator
/// funds. For `rwa config check`.
pub fn describe(config: &SignerConfig, data_dir: &Path) -> serde_json::Value {
    let address_of = |key: &Secret| {
        LocalSigner::from_hex(key.expose())
            .ok()
            .map(|s| format!("{:#x}", s.address()))
    };
    let default = match (&config.key, &config.keystore) {
        (Some(key), _) => ("RWA_SIGNER_KEY".to_owned(), address_of(key)),
        (None, Some(path)) => (
            format!("keystore {}", path.display()),
            // A v3 keystore states its address in clear.
            std::fs::read_to_string(path)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| {
                    v["address"]
                        .as_str()
                        .map(|a| format!("0x{}", a.trim_start_matches("0x")))
                }),
        ),
        (None, None) => {
            let path = development_key_path(data_dir);
            let existing = std::fs::read_to_string(&path)
                .ok()
                .and_then(|k| LocalSigner::from_hex(&k).ok())
                .map(|s| format!("{:#x}", s.address()));
            (
                "development key in the data dir (generated at first start)".to_owned(),
                existing,
            )
        }
    };
    let mut out = serde_json::Map::new();
    for (lane, var, key) in lane_keys(config) {
        let (source, address) = match key {
            Some(key) => (var.to_owned(), address_of(key)),
            None => default.clone(),
        };
        out.insert(
            lane.as_str().to_owned(),
            serde_json::json!({ "source": source, "address": address }),
        );
    }
    serde_json::Value::Object(out)
}

fn from_secret(var: &str, key: &Secret) -> anyhow::Result<LocalSigner> {
    LocalSigner::from_hex(key.expose()).with_context(|| var.to_owned())
}

/// Each lane with the variable that may give it its own key, and that key.
fn lane_keys(config: &SignerConfig) -> [(Lane, &'static str, &Option<Secret>); 4] {
    [
        (Lane::Deploy, "RWA_SIGNER_DEPLOY_KEY", &config.deploy_key),
        (Lane::Mint, "RWA_SIGNER_MINT_KEY", &config.mint_key),
        (
            Lane::Settlement,
            "RWA_SIGNER_SETTLEMENT_KEY",
            &config.settlement_key,
        ),
        (Lane::Admin, "RWA_SIGNER_ADMIN_KEY", &config.admin_key),
    ]
}
