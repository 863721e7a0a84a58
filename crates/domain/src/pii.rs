//! Personal data at rest: sealed with an AEAD, found by a keyed hash.
//!
//! Names, e-mails and external references are stored sealed with
//! XChaCha20-Poly1305 (random 192-bit nonces, so no nonce bookkeeping across
//! processes) under a key derived from `RWA_SECRET_KEY` with HKDF-SHA256.
//! Each sealed value names the key it was sealed under (`v1.<key id>.<hex>`),
//! so a rotation can re-seal rows one by one while every row stays readable,
//! and the caller binds each value to its row and column (the associated
//! data), so a sealed value copied into another row or column does not open.
//!
//! Search never touches plaintext: an exact lookup compares a keyed hash
//! (HMAC-SHA256 under a second derived key) of the normalised value, and the
//! keyed hashes are recomputed under the new key by the same rotation.
//!
//! Why hand-assembled from RustCrypto parts rather than one crate: the parts
//! are the well-kept crates (`chacha20poly1305`, `hkdf`, `hmac`); what is ours
//! is only the envelope (version, key id, nonce) and the derivation labels.

use chacha20poly1305::aead::{Aead, KeyInit as _, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit as _, Mac};
use sha2::Sha256;
use thiserror::Error;

/// HKDF salt: the scheme's name and version, so the same secret used for
/// something else derives unrelated keys.
const SALT: &[u8] = b"rwa/pii/v1";
const NONCE_BYTES: usize = 24;

/// What can go wrong opening a sealed value.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PiiError {
    /// Not a value this scheme wrote.
    #[error("not a sealed value")]
    Malformed,
    /// Sealed under a key that is neither the current nor the previous one.
    #[error("sealed under key {0}, which is not configured")]
    UnknownKey(String),
    /// The ciphertext, its row binding or its key does not verify.
    #[error("does not verify: altered, moved from another row, or sealed under another secret")]
    Forged,
}

/// The keys derived from one server secret.
pub struct PiiKey {
    id: String,
    aead: XChaCha20Poly1305,
    index: [u8; 32],
}

impl std::fmt::Debug for PiiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key material.
        f.debug_struct("PiiKey").field("id", &self.id).finish()
    }
}

impl PiiKey {
    /// Derives the sealing key, the search key and the key id from `secret`.
    pub fn derive(secret: &[u8]) -> PiiKey {
        let hk = Hkdf::<Sha256>::new(Some(SALT), secret);
        let mut aead = [0_u8; 32];
        let mut index = [0_u8; 32];
        let mut id = [0_u8; 4];
        // Expanding at most 32 bytes from SHA-256 cannot fail.
        hk.expand(b"aead", &mut aead).expect("32 bytes");
        hk.expand(b"blind-index", &mut index).expect("32 bytes");
        hk.expand(b"key-id", &mut id).expect("4 bytes");
        PiiKey {
            id: hex::encode(id),
            aead: XChaCha20Poly1305::new(&Key::from(aead)),
            index,
        }
    }

    /// The id sealed values carry (public: it identifies, not reveals, the key).
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The current key, and the previous one while a rotation is under way.
#[derive(Debug)]
pub struct PiiKeys {
    current: PiiKey,
    previous: Option<PiiKey>,
}

impl PiiKeys {
    /// Keys for `secret`, with `previous` still readable if given.
    pub fn new(secret: &[u8], previous: Option<&[u8]>) -> PiiKeys {
        PiiKeys {
            current: PiiKey::derive(secret),
            previous: previous.map(PiiKey::derive),
        }
    }

    /// The current key's id.
    pub fn current_id(&self) -> &str {
        self.current.id()
    }

    /// Seals `plain` under the current key, bound to `context` (the row and
    /// column it belongs to, e.g. `investor:<id>:email`).
    pub fn seal(&self, plain: &str, context: &str) -> String {
        let nonce: [u8; NONCE_BYTES] = rand::random();
        let sealed = self
            .current
            .aead
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            // Encryption fails only for inputs beyond 256 GiB.
            .expect("sealing a short value");
        let mut body = Vec::with_capacity(NONCE_BYTES + sealed.len());
        body.extend_from_slice(&nonce);
        body.extend_from_slice(&sealed);
        format!("v1.{}.{}", self.current.id, hex::encode(body))
    }

    /// Opens a value sealed by [`PiiKeys::seal`] under the current or the
    /// previous key, for the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String, PiiError> {
        let (key_id, body) = envelope(sealed)?;
        let key = self.key(key_id)?;
        let (nonce, ciphertext) = body.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| PiiError::Malformed)?;
        let plain = key
            .aead
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| PiiError::Forged)?;
        String::from_utf8(plain).map_err(|_| PiiError::Forged)
    }

    /// For a rotation: the value sealed again under the current key, or
    /// `None` when it already is.
    pub fn reseal(&self, sealed: &str, context: &str) -> Result<Option<String>, PiiError> {
        let (key_id, _) = envelope(sealed)?;
        if key_id == self.current.id {
            return Ok(None);
        }
        let plain = self.open(sealed, context)?;
        Ok(Some(self.seal(&plain, context)))
    }

    /// The keyed hash an exact search compares, under the current key; the
    /// caller normalises `value` first (e.g. [`crate::investor::normalize_name`]).
    /// `kind` separates namespaces (`name`, `external_ref`), so equal strings of
    /// different kinds never match.
    pub fn blind_index(&self, kind: &str, value: &str) -> String {
        let mut mac = <Hmac<Sha256>>::new_from_slice(&self.current.index).expect("any key length");
        mac.update(&(kind.len() as u64).to_be_bytes());
        mac.update(kind.as_bytes());
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn key(&self, id: &str) -> Result<&PiiKey, PiiError> {
        if id == self.current.id {
            return Ok(&self.current);
        }
        self.previous
            .as_ref()
            .filter(|k| k.id == id)
            .ok_or_else(|| PiiError::UnknownKey(id.to_owned()))
    }
}

/// Splits `v1.<key id>.<hex>` into the key id and the decoded body (nonce
/// and ciphertext with its tag).
fn envelope(sealed: &str) -> Result<(&str, Vec<u8>), PiiError> {
    let mut parts = sealed.splitn(3, '.');
    let (Some("v1"), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(PiiError::Malformed);
    };
    let body = hex::decode(body).map_err(|_| PiiError::Malformed)?;
    // A nonce and at least the 16-byte tag.
    if body.len() < NONCE_BYTES + 16 {
        return Err(PiiError::Malformed);
    }
    Ok((key_id, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &[u8] = b"an-old-server-secret-of-at-least-32-bytes";
    const NEW: &[u8] = b"a-new-server-secret-of-at-least-32-bytes!";

    #[test]
    fn a_sealed_value_opens_for_its_row_only_and_hides_its_plaintext() {
        let keys = PiiKeys::new(OLD, None);
        let sealed = keys.seal("ana@example.com", "investor:1:email");
        assert!(sealed.starts_with(&format!("v1.{}.", keys.current_id())));
        assert!(!sealed.contains("ana"));
        assert_eq!(
            keys.open(&sealed, "investor:1:email").unwrap(),
            "ana@example.com"
        );
        // Moved to another row or column: refused.
        assert_eq!(
            keys.open(&sealed, "investor:2:email"),
            Err(PiiError::Forged)
        );
        assert_eq!(keys.open(&sealed, "investor:1:name"), Err(PiiError::Forged));
        // The same value seals differently each time (random nonces).
        assert_ne!(sealed, keys.seal("ana@example.com", "investor:1:email"));
    }

    #[test]
    fn altered_or_foreign_values_do_not_open() {
        let keys = PiiKeys::new(OLD, None);
        let sealed = keys.seal("Ana", "c");
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(keys.open(&flipped, "c"), Err(PiiError::Forged));
        assert_eq!(keys.open("Ana", "c"), Err(PiiError::Malformed));
        assert_eq!(keys.open("v1.abcd.zz", "c"), Err(PiiError::Malformed));
        let other = PiiKeys::new(NEW, None);
        assert!(matches!(
            other.open(&sealed, "c"),
            Err(PiiError::UnknownKey(_))
        ));
    }

    #[test]
    fn a_rotation_reads_old_rows_and_reseals_them_under_the_new_key() {
        let before = PiiKeys::new(OLD, None);
        let sealed = before.seal("Ana Müller", "investor:1:name");
        let during = PiiKeys::new(NEW, Some(OLD));
        assert_ne!(during.current_id(), before.current_id());
        assert_eq!(
            during.open(&sealed, "investor:1:name").unwrap(),
            "Ana Müller"
        );
        let resealed = during
            .reseal(&sealed, "investor:1:name")
            .unwrap()
            .expect("under the old key");
        assert!(resealed.starts_with(&format!("v1.{}.", during.current_id())));
        assert_eq!(during.reseal(&resealed, "investor:1:name"), Ok(None));
        let after = PiiKeys::new(NEW, None);
        assert_eq!(
            after.open(&resealed, "investor:1:name").unwrap(),
            "Ana Müller"
        );
    }

    #[test]
    fn blind_indexes_are_keyed_and_separated_by_kind() {
        let keys = PiiKeys::new(OLD, None);
        let a = keys.blind_index("name", "ana muller");
        assert_eq!(a, keys.blind_index("name", "ana muller"));
        assert_eq!(a.len(), 64);
        assert_ne!(a, keys.blind_index("external_ref", "ana muller"));
        assert_ne!(a, PiiKeys::new(NEW, None).blind_index("name", "ana muller"));
    }

    #[test]
    fn key_material_is_never_printed() {
        let keys = PiiKeys::new(OLD, None);
        let shown = format!("{keys:?}");
        assert!(shown.contains(keys.current_id()));
        assert!(!shown.contains("aead: ") && !shown.contains("index"));
    }
}
