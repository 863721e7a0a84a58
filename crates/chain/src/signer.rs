//! Local private-key signers for the domain's [`Signer`] port: a hex key from
//! the configuration (`RWA_SIGNER_KEY`, per-lane overrides), an encrypted
//! Ethereum keystore (v3 JSON, `RWA_SIGNER_KEYSTORE` + `RWA_SIGNER_PASSWORD`),
//! or, in development only, a key generated into the data dir. A KMS or remote signer implements
//! the same port without touching callers.

use std::fmt;
use std::path::Path;

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::eip2718::Encodable2718;
use alloy::network::TxSignerSync;
use alloy::primitives::TxKind;
use alloy::signers::local::PrivateKeySigner;
use async_trait::async_trait;
use rwa_domain::chain::Address;
use rwa_domain::tx::{SignedTx, Signer, SignerError, UnsignedTx};

/// A signer holding its private key in memory. `Debug` shows the address only.
#[derive(Clone)]
pub struct LocalSigner {
    inner: PrivateKeySigner,
}

impl fmt::Debug for LocalSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSigner")
            .field("address", &self.inner.address())
            .finish_non_exhaustive()
    }
}

/// Why a key could not be loaded. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not 32 bytes of hex, or not a valid secp256k1 scalar.
    #[error("not a valid secp256k1 private key (expected 64 hex digits, 0x optional)")]
    Invalid,
    /// The keystore could not be opened: wrong password, or not a v3 keystore.
    #[error("keystore {path}: {reason}")]
    Keystore {
        /// The file.
        path: String,
        /// What to fix.
        reason: String,
    },
    /// The key file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl LocalSigner {
    /// Parses a hex private key (`0x` optional).
    pub fn from_hex(key: &str) -> Result<Self, KeyError> {
        let inner: PrivateKeySigner = key.trim().parse().map_err(|_| KeyError::Invalid)?;
        Ok(Self { inner })
    }

    /// Decrypts an Ethereum v3 keystore (scrypt or pbkdf2). The key stays in
    /// memory only; errors name the file and never echo the password.
    pub fn from_keystore(path: &Path, password: &str) -> Result<Self, KeyError> {
        let fail = |reason: String| KeyError::Keystore {
            path: path.display().to_string(),
            reason,
        };
        if !path.is_file() {
            return Err(fail("no such file".into()));
        }
        let inner = PrivateKeySigner::decrypt_keystore(path, password).map_err(|e| {
            let detail = e.to_string();
            fail(if detail.contains("Mac Mismatch") {
                "wrong password (the keystore's MAC does not match)".into()
            } else {
                format!("not a readable v3 keystore: {detail}")
            })
        })?;
        Ok(Self { inner })
    }

    /// A fresh random key.
    pub fn random() -> Self {
        Self {
            inner: PrivateKeySigner::random(),
        }
    }

    /// Loads the development key at `path`, generating it (mode 0600) on first
    /// use. Development only: production configuration refuses generated keys.
    pub fn development_key(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_hex(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let signer = Self::random();
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                write_private(path, &signer.private_key_hex()).map_err(io)?;
                Ok(signer)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The key as 0x-hex, for writing the development key file only.
    fn private_key_hex(&self) -> String {
        format!("0x{}", alloy::hex::encode(self.inner.to_bytes()))
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// Signs `tx` with `key` synchronously: shared by [`LocalSigner`] and tests.
pub fn sign_eip1559(key: &PrivateKeySigner, tx: &UnsignedTx) -> Result<SignedTx, SignerError> {
    let mut body = TxEip1559 {
        chain_id: tx.chain_id,
        nonce: tx.nonce,
        gas_limit: tx.gas_limit,
        max_fee_per_gas: tx.max_fee_per_gas,
        max_priority_fee_per_gas: tx.max_priority_fee_per_gas,
        to: tx.to.map_or(TxKind::Create, TxKind::Call),
        value: tx.value,
        access_list: Default::default(),
        input: tx.input.clone(),
    };
    let signature = key
        .sign_transaction_sync(&mut body)
        .map_err(|e| SignerError::Failed(e.to_string()))?;
    let envelope: TxEnvelope = body.into_signed(signature).into();
    Ok(SignedTx {
        hash: *envelope.tx_hash(),
        raw: envelope.encoded_2718().into(),
    })
}

#[async_trait]
impl Signer for LocalSigner {
    fn address(&self) -> Address {
        self.inner.address()
    }

    async fn sign(&self, tx: &UnsignedTx) -> Result<SignedTx, SignerError> {
        sign_eip1559(&self.inner, tx)
    }
}

#[cfg(test)]
mod tests {
    use alloy::consensus::transaction::SignerRecoverable;
    use alloy::eips::eip2718::Decodable2718;
    use rwa_domain::chain::{Bytes, U256};

    use super::*;

    #[test]
    fn keystores_decrypt_to_their_key_and_refuse_a_wrong_password() {
        let dir = tempfile::tempdir().unwrap();
        let key = LocalSigner::random();
        PrivateKeySigner::encrypt_keystore(
            dir.path(),
            &mut rand08::thread_rng(),
            key.inner.to_bytes(),
            "correct horse",
            Some("signer.json"),
        )
        .unwrap();
        let path = dir.path().join("signer.json");
        let loaded = LocalSigner::from_keystore(&path, "correct horse").unwrap();
        assert_eq!(loaded.address(), key.address());

        let wrong = LocalSigner::from_keystore(&path, "battery staple").unwrap_err();
        assert!(wrong.to_string().contains("wrong password"), "{wrong}");
        assert!(wrong.to_string().contains("signer.json"), "{wrong}");
        assert!(
            !wrong.to_string().contains("battery"),
            "never echoes the password"
        );

        std::fs::write(dir.path().join("junk.json"), "{}").unwrap();
        let junk = LocalSigner::from_keystore(&dir.path().join("junk.json"), "x").unwrap_err();
        assert!(
            junk.to_string().contains("not a readable v3 keystore"),
            "{junk}"
        );
        let missing = LocalSigner::from_keystore(&dir.path().join("nope.json"), "x").unwrap_err();
        assert!(missing.to_string().contains("no such file"), "{missing}");
    }

    #[tokio::test]
    async fn signed_transactions_decode_and_recover_to_the_signer() {
        // The first well-known development key; its address is public knowledge.
        let signer = LocalSigner::from_hex(
            "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
        )
        .unwrap();
        assert_eq!(
            signer.address(),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
                .parse::<Address>()
                .unwrap()
        );
        let tx = UnsignedTx {
            chain_id: 31337,
            nonce: 7,
            max_fee_per_gas: 2_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            gas_limit: 21_000,
            to: Some(Address::repeat_byte(0x22)),
            value: U256::from(5u64),
            input: Bytes::new(),
        };
        let signed = signer.sign(&tx).await.unwrap();
        let decoded = TxEnvelope::decode_2718(&mut signed.raw.as_ref()).unwrap();
        assert_eq!(*decoded.tx_hash(), signed.hash);
        assert_eq!(decoded.recover_signer().unwrap(), signer.address());
        assert!(format!("{signer:?}").contains("address"));
        assert!(
            !format!("{signer:?}").contains("ac0974"),
            "Debug never shows the key"
        );
    }

    #[test]
    fn the_development_key_is_generated_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join("dev-signer.key");
        let first = LocalSigner::development_key(&path).unwrap();
        let again = LocalSigner::development_key(&path).unwrap();
        assert_eq!(first.address(), again.address());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "only the owner reads the key");
        }
        assert!(matches!(
            LocalSigner::from_hex("0x1234"),
            Err(KeyError::Invalid)
        ));
    }
}
