//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 keys.
//!
//! A signed note is a UTF-8 text ending in a newline, a blank line, and one or more
//! signature lines `— <key name> <base64(key ID ‖ signature)>`. Opening a note follows
//! `golang.org/x/mod/sumdb/note.Open`: signatures from unknown keys are kept but ignored,
//! a known key whose signature fails rejects the whole note, and a note without one
//! verified signature is rejected. Error texts match the Go package's where it has one.
//!
//! Key strings use the Go package's encodings: a verifier key is
//! `<name>+<8 hex key ID>+<base64(type ‖ public key)>` and a signing key is
//! `PRIVATE+KEY+<name>+<8 hex key ID>+<base64(0x01 ‖ 32-byte seed)>`. The key ID is the
//! first four bytes, big-endian, of `SHA-256(name ‖ 0x0a ‖ type ‖ public key)`.
//!
//! Verification can also check C2SP tlog-cosignature v1 signatures (type 0x04), so a
//! checkpoint cosigned by a witness opens with the witness's verifier key.
//!
//! Parsing is stricter than Go in three places, none of which a conforming signer
//! produces: base64 must be canonical (zero padding bits), key IDs in key strings must be
//! lowercase hex, and key names in key strings must not contain ASCII control characters.
//!
//! Nothing here draws randomness: keys come from 32-byte seeds and Ed25519 signing is
//! deterministic, so the same seed and text always give the same signature line.
#![deny(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest as _, Sha256};

/// Signature type byte of plain Ed25519 note signatures.
pub const SIG_TYPE_ED25519: u8 = 0x01;
/// Signature type byte of C2SP tlog-cosignature v1 (timestamped Ed25519) signatures.
pub const SIG_TYPE_COSIGNATURE_V1: u8 = 0x04;
/// Most signature lines [`open`] reads, as in Go; the 101st makes the note malformed.
pub const MAX_SIGNATURES: usize = 100;
/// What every signature line starts with: U+2014 EM DASH and a space (`e2 80 94 20`).
pub const SIGNATURE_LINE_PREFIX: &str = "\u{2014} ";
/// Length of an Ed25519 seed and of an Ed25519 public key.
pub const ED25519_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const ED25519_SIGNATURE_LEN: usize = 64;
/// Length of a tlog-cosignature v1 signature: a big-endian `u64` timestamp, then Ed25519.
pub const COSIGNATURE_V1_LEN: usize = 8 + ED25519_SIGNATURE_LEN;

const SIGNING_KEY_PREFIX: &str = "PRIVATE+KEY+";
const KEY_ID_HEX_LEN: usize = 8;

/// The 32-bit ID of a key: the first four bytes, big-endian, of
/// `SHA-256(name ‖ 0x0a ‖ signature type ‖ public key)`.
///
/// `Display` writes the 8 lowercase hex digits used in key strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub u32);

impl KeyId {
    /// Computes the key ID of a key from its name, signature type and public key bytes.
    pub fn compute(name: &str, sig_type: u8, public_key: &[u8]) -> Self {
        let digest: [u8; 32] = Sha256::new()
            .chain_update(name.as_bytes())
            .chain_update([b'\n', sig_type])
            .chain_update(public_key)
            .finalize()
            .into();
        let [a, b, c, d, ..] = digest;
        Self(u32::from_be_bytes([a, b, c, d]))
    }

    /// The four bytes that start every signature by this key.
    pub const fn to_be_bytes(self) -> [u8; 4] {
        self.0.to_be_bytes()
    }

    /// Parses exactly 8 lowercase hex digits.
    fn parse_hex(text: &str) -> Option<Self> {
        if text.len() != KEY_ID_HEX_LEN
            || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return None;
        }
        u32::from_str_radix(text, 16).ok().map(Self)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// Whether `name` can name a key: non-empty, no Unicode white space, no `+`, and no ASCII
/// control characters (which a note may not contain anyway).
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c == '+' || c.is_whitespace() || c < '\u{20}')
}

/// The signature algorithms a [`Verifier`] can check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignatureType {
    /// Ed25519 over the note text (type 0x01).
    Ed25519,
    /// C2SP tlog-cosignature v1: Ed25519 over `cosignature/v1\ntime <t>\n` followed by the
    /// note text, with the timestamp `t` in the signature (type 0x04).
    CosignatureV1,
}

impl SignatureType {
    /// The signature type byte.
    pub const fn id(self) -> u8 {
        match self {
            SignatureType::Ed25519 => SIG_TYPE_ED25519,
            SignatureType::CosignatureV1 => SIG_TYPE_COSIGNATURE_V1,
        }
    }

    /// The type with this byte, if Vouch can verify it.
    pub const fn from_id(id: u8) -> Option<Self> {
        match id {
            SIG_TYPE_ED25519 => Some(SignatureType::Ed25519),
            SIG_TYPE_COSIGNATURE_V1 => Some(SignatureType::CosignatureV1),
            _ => None,
        }
    }
}

/// Why a key string or key could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key name is empty or has a space, a `+` or a control character.
    #[error(
        "invalid key name: it must be non-empty, without white space, '+' or control characters"
    )]
    InvalidName,
    /// The string lacks one of its `+`-separated parts.
    #[error("malformed key: expected <name>+<key id>+<base64 key>")]
    MissingPart,
    /// A signing key string that does not start with `PRIVATE+KEY+`.
    #[error("malformed signing key: it must start with PRIVATE+KEY+")]
    NotASigningKey,
    /// The key ID part is not 8 lowercase hex digits.
    #[error("malformed key: the key id must be 8 lowercase hex digits")]
    InvalidKeyIdHex,
    /// The key part is not canonical standard base64.
    #[error("malformed key: the key is not canonical base64")]
    InvalidBase64,
    /// The key part decodes to no bytes at all.
    #[error("malformed key: the key is empty")]
    EmptyKey,
    /// A signature type Vouch does not support here.
    #[error("unknown signature type 0x{0:02x}")]
    UnknownSignatureType(u8),
    /// Key material of the wrong length for its type.
    #[error("malformed key: {len} key bytes after the type byte; expected 32")]
    InvalidKeyLength {
        /// How many bytes followed the type byte.
        len: usize,
    },
    /// The stated key ID is not the one the name and key give.
    #[error("key id {stated} does not match the key, which has id {computed}")]
    KeyIdMismatch {
        /// The ID in the string.
        stated: KeyId,
        /// The ID computed from the name and key.
        computed: KeyId,
    },
    /// 32 bytes that are not an Ed25519 public key (not a curve point).
    #[error("the public key is not a valid Ed25519 point")]
    InvalidPublicKey,
}

/// Why a text could not be signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The text does not end with a newline.
    #[error("note text must end with a newline")]
    MissingFinalNewline,
    /// The text has an ASCII control character other than newline.
    #[error("note text has control character 0x{byte:02x} at byte {at}")]
    ControlCharacter {
        /// Byte offset in the text.
        at: usize,
        /// The character.
        byte: u8,
    },
    /// No signer was given.
    #[error("a note needs at least one signer")]
    NoSigners,
    /// Two signers with the same name and key ID.
    #[error("two signers share key id {0}")]
    DuplicateSigner(KeyId),
    /// More signatures than [`open`] accepts.
    #[error("{0} signatures; a note may carry at most {MAX_SIGNATURES}")]
    TooManySignatures(usize),
}

/// Checks a note text: it must end in a newline and hold no ASCII control character
/// other than newline. A `&str` is already UTF-8.
fn check_text(text: &str) -> Result<(), SignError> {
    if let Some((at, byte)) = text
        .bytes()
        .enumerate()
        .find(|&(_, b)| b < 0x20 && b != b'\n')
    {
        return Err(SignError::ControlCharacter { at, byte });
    }
    if !text.ends_with('\n') {
        return Err(SignError::MissingFinalNewline);
    }
    Ok(())
}

/// Splits `<name>+<hex id>+<base64>` at its first two `+` (base64 may contain `+`).
fn split_key_string(text: &str) -> Result<(&str, KeyId, Vec<u8>), KeyError> {
    let (name, rest) = text.split_once('+').ok_or(KeyError::MissingPart)?;
    let (id_hex, key_b64) = rest.split_once('+').ok_or(KeyError::MissingPart)?;
    if !is_valid_key_name(name) {
        return Err(KeyError::InvalidName);
    }
    let key_id = KeyId::parse_hex(id_hex).ok_or(KeyError::InvalidKeyIdHex)?;
    let key = BASE64
        .decode(key_b64)
        .map_err(|_| KeyError::InvalidBase64)?;
    if key.is_empty() {
        return Err(KeyError::EmptyKey);
    }
    Ok((name, key_id, key))
}

/// Splits `type ‖ 32 bytes` into the type byte and the key.
fn split_typed_key(key: &[u8]) -> Result<(u8, [u8; ED25519_KEY_LEN]), KeyError> {
    let (&sig_type, material) = key.split_first().ok_or(KeyError::EmptyKey)?;
    let material =
        <[u8; ED25519_KEY_LEN]>::try_from(material).map_err(|_| KeyError::InvalidKeyLength {
            len: material.len(),
        })?;
    Ok((sig_type, material))
}

/// A private Ed25519 note-signing key with its name.
///
/// `Debug` shows the name and key ID only.
#[derive(Clone)]
pub struct Signer {
    name: String,
    key_id: KeyId,
    key: SigningKey,
}

impl Signer {
    /// The signer named `name` with the Ed25519 key derived from `seed`
    /// (the RFC 8032 private key).
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidName`] if the name is not a valid key name.
    pub fn from_seed(name: &str, seed: &[u8; ED25519_KEY_LEN]) -> Result<Self, KeyError> {
        if !is_valid_key_name(name) {
            return Err(KeyError::InvalidName);
        }
        let key = SigningKey::from_bytes(seed);
        let key_id = KeyId::compute(name, SIG_TYPE_ED25519, key.verifying_key().as_bytes());
        Ok(Self {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// Parses a signing key string `PRIVATE+KEY+<name>+<key id>+<base64(0x01 ‖ seed)>`.
    ///
    /// # Errors
    ///
    /// [`KeyError`] naming the malformed part; the key ID must match the public key
    /// derived from the seed.
    pub fn from_skey(skey: &str) -> Result<Self, KeyError> {
        let rest = skey
            .strip_prefix(SIGNING_KEY_PREFIX)
            .ok_or(KeyError::NotASigningKey)?;
        let (name, stated, key) = split_key_string(rest)?;
        let (sig_type, seed) = split_typed_key(&key)?;
        if sig_type != SIG_TYPE_ED25519 {
            return Err(KeyError::UnknownSignatureType(sig_type));
        }
        let signer = Self::from_seed(name, &seed)?;
        if signer.key_id != stated {
            return Err(KeyError::KeyIdMismatch {
                stated,
                computed: signer.key_id,
            });
        }
        Ok(signer)
    }

    /// The signing key string. It holds the private key: keep it secret.
    pub fn to_skey(&self) -> String {
        let mut key = Vec::with_capacity(1 + ED25519_KEY_LEN);
        key.push(SIG_TYPE_ED25519);
        key.extend_from_slice(self.key.as_bytes());
        format!(
            "{SIGNING_KEY_PREFIX}{}+{}+{}",
            self.name,
            self.key_id,
            BASE64.encode(key)
        )
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> [u8; ED25519_KEY_LEN] {
        self.key.verifying_key().to_bytes()
    }

    /// The verifier for this signer's signatures.
    pub fn verifier(&self) -> Verifier {
        Verifier {
            name: self.name.clone(),
            key_id: self.key_id,
            sig_type: SignatureType::Ed25519,
            key: self.key.verifying_key(),
        }
    }

    /// Signs a note text and returns its signature line,
    /// `— <name> <base64(key ID ‖ signature)>\n`.
    ///
    /// # Errors
    ///
    /// [`SignError`] if `text` is not a valid note text (it must end in a newline and hold
    /// no control character other than newline).
    pub fn sign(&self, text: &str) -> Result<String, SignError> {
        check_text(text)?;
        Ok(self.signature_line(text))
    }

    fn signature_line(&self, text: &str) -> String {
        let signature = self.key.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(4 + ED25519_SIGNATURE_LEN);
        blob.extend_from_slice(&self.key_id.to_be_bytes());
        blob.extend_from_slice(&signature.to_bytes());
        format!(
            "{SIGNATURE_LINE_PREFIX}{} {}\n",
            self.name,
            BASE64.encode(blob)
        )
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("name", &self.name)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl FromStr for Signer {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_skey(s)
    }
}

/// A trusted public key with its name: checks signatures of one type.
///
/// `Display` writes the verifier key string.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    key_id: KeyId,
    sig_type: SignatureType,
    key: VerifyingKey,
}

impl Verifier {
    /// A verifier of plain Ed25519 note signatures.
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidName`] or [`KeyError::InvalidPublicKey`].
    pub fn new_ed25519(name: &str, public_key: &[u8; ED25519_KEY_LEN]) -> Result<Self, KeyError> {
        Self::new(name, SignatureType::Ed25519, public_key)
    }

    /// A verifier of C2SP tlog-cosignature v1 signatures (type 0x04).
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidName`] or [`KeyError::InvalidPublicKey`].
    pub fn new_cosignature_v1(
        name: &str,
        public_key: &[u8; ED25519_KEY_LEN],
    ) -> Result<Self, KeyError> {
        Self::new(name, SignatureType::CosignatureV1, public_key)
    }

    fn new(
        name: &str,
        sig_type: SignatureType,
        public_key: &[u8; ED25519_KEY_LEN],
    ) -> Result<Self, KeyError> {
        if !is_valid_key_name(name) {
            return Err(KeyError::InvalidName);
        }
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| KeyError::InvalidPublicKey)?;
        Ok(Self {
            name: name.to_owned(),
            key_id: KeyId::compute(name, sig_type.id(), public_key),
            sig_type,
            key,
        })
    }

    /// Parses a verifier key string `<name>+<key id>+<base64(type ‖ public key)>`.
    ///
    /// # Errors
    ///
    /// [`KeyError`] naming the malformed part; the key ID must match the name and key.
    pub fn from_vkey(vkey: &str) -> Result<Self, KeyError> {
        let (name, stated, key) = split_key_string(vkey)?;
        let (type_id, public_key) = split_typed_key(&key)?;
        let sig_type =
            SignatureType::from_id(type_id).ok_or(KeyError::UnknownSignatureType(type_id))?;
        let verifier = Self::new(name, sig_type, &public_key)?;
        if verifier.key_id != stated {
            return Err(KeyError::KeyIdMismatch {
                stated,
                computed: verifier.key_id,
            });
        }
        Ok(verifier)
    }

    /// The verifier key string.
    pub fn to_vkey(&self) -> String {
        self.to_string()
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The signature type this key checks.
    pub fn signature_type(&self) -> SignatureType {
        self.sig_type
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> [u8; ED25519_KEY_LEN] {
        self.key.to_bytes()
    }

    /// Whether `signature` (the bytes after the key ID) signs `text`.
    ///
    /// Ed25519 is checked as RFC 8032 and Go's `crypto/ed25519` do: `S` must be reduced
    /// and the recomputed `R` must equal the signature's `R` byte for byte. A
    /// cosignature's timestamp must not exceed 2^63 - 1.
    #[must_use]
    pub fn verify(&self, text: &[u8], signature: &[u8]) -> bool {
        match self.sig_type {
            SignatureType::Ed25519 => self.verify_ed25519(text, signature),
            SignatureType::CosignatureV1 => {
                let Some((timestamp, signature)) = signature.split_first_chunk::<8>() else {
                    return false;
                };
                let timestamp = u64::from_be_bytes(*timestamp);
                if timestamp > i64::MAX.unsigned_abs() {
                    return false;
                }
                let mut message = format!("cosignature/v1\ntime {timestamp}\n").into_bytes();
                message.extend_from_slice(text);
                self.verify_ed25519(&message, signature)
            }
        }
    }

    fn verify_ed25519(&self, message: &[u8], signature: &[u8]) -> bool {
        ed25519_dalek::Signature::from_slice(signature)
            .is_ok_and(|signature| self.key.verify(message, &signature).is_ok())
    }
}

impl fmt::Display for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut key = Vec::with_capacity(1 + ED25519_KEY_LEN);
        key.push(self.sig_type.id());
        key.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{}+{}", self.name, self.key_id, BASE64.encode(key))
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Verifier({self})")
    }
}

impl FromStr for Verifier {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_vkey(s)
    }
}

/// The set of trusted keys a note is opened with, looked up by (name, key ID).
///
/// Trusting an old and a new key at once is how keys rotate: a note signed by either
/// opens. Two different keys with the same name and ID are kept, and a signature naming
/// them fails with [`NoteError::AmbiguousKey`], as in Go.
#[derive(Debug, Clone, Default)]
pub struct Verifiers {
    keys: Vec<Verifier>,
}

/// What a (name, key ID) lookup found.
enum Lookup<'a> {
    Unknown,
    Found(&'a Verifier),
    Ambiguous,
}

impl Verifiers {
    /// No trusted keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts `verifier`; returns `false` if this exact key was already trusted.
    pub fn insert(&mut self, verifier: Verifier) -> bool {
        if self.keys.contains(&verifier) {
            return false;
        }
        self.keys.push(verifier);
        true
    }

    /// How many keys are trusted.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The trusted keys, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &Verifier> {
        self.keys.iter()
    }

    fn lookup(&self, name: &str, key_id: KeyId) -> Lookup<'_> {
        let mut found = self
            .keys
            .iter()
            .filter(|v| v.key_id == key_id && v.name == name);
        match (found.next(), found.next()) {
            (None, _) => Lookup::Unknown,
            (Some(verifier), None) => Lookup::Found(verifier),
            (Some(_), Some(_)) => Lookup::Ambiguous,
        }
    }
}

impl FromIterator<Verifier> for Verifiers {
    fn from_iter<I: IntoIterator<Item = Verifier>>(iter: I) -> Self {
        let mut set = Self::new();
        set.extend(iter);
        set
    }
}

impl Extend<Verifier> for Verifiers {
    fn extend<I: IntoIterator<Item = Verifier>>(&mut self, iter: I) {
        for verifier in iter {
            self.insert(verifier);
        }
    }
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The key ID (the first four bytes of the decoded signature).
    pub key_id: KeyId,
    /// The base64 text of `key ID ‖ signature`, as it appeared in the note.
    pub base64: String,
}

impl NoteSignature {
    /// The signature line, `— <name> <base64>\n`.
    pub fn line(&self) -> String {
        format!("{SIGNATURE_LINE_PREFIX}{} {}\n", self.name, self.base64)
    }
}

/// A note whose text at least one trusted key signed.
///
/// Only [`open`] makes one, so holding a `VerifiedNote` means the checks passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedNote {
    text: String,
    verified: Vec<NoteSignature>,
    unverified: Vec<NoteSignature>,
}

impl VerifiedNote {
    /// The signed text, including its final newline.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Signatures from trusted keys that verified, in note order, one per key.
    pub fn verified(&self) -> &[NoteSignature] {
        &self.verified
    }

    /// Signatures from keys not in the trusted set, in note order, identical lines once.
    pub fn unverified(&self) -> &[NoteSignature] {
        &self.unverified
    }

    /// Whether the key `(name, key_id)` verified this note.
    pub fn is_verified_by(&self, name: &str, key_id: KeyId) -> bool {
        self.verified
            .iter()
            .any(|s| s.key_id == key_id && s.name == name)
    }

    /// The note with signatures from `signers` added, as Go's `note.Sign` does for an
    /// opened note: existing signatures (verified, then unverified) except those by one
    /// of `signers`' keys, followed by the new ones.
    ///
    /// # Errors
    ///
    /// [`SignError`] if there are no signers, two signers share a key, or the result
    /// would carry more than [`MAX_SIGNATURES`] signatures.
    pub fn add_signatures(&self, signers: &[&Signer]) -> Result<Vec<u8>, SignError> {
        check_signers(signers)?;
        let kept: Vec<&NoteSignature> = self
            .verified
            .iter()
            .chain(&self.unverified)
            .filter(|s| {
                !signers
                    .iter()
                    .any(|signer| signer.key_id == s.key_id && signer.name == s.name)
            })
            .collect();
        let total = kept.len().saturating_add(signers.len());
        if total > MAX_SIGNATURES {
            return Err(SignError::TooManySignatures(total));
        }
        let mut out = format!("{}\n", self.text);
        for signature in kept {
            out.push_str(&signature.line());
        }
        for signer in signers {
            out.push_str(&signer.signature_line(&self.text));
        }
        Ok(out.into_bytes())
    }
}

fn check_signers(signers: &[&Signer]) -> Result<(), SignError> {
    if signers.is_empty() {
        return Err(SignError::NoSigners);
    }
    if signers.len() > MAX_SIGNATURES {
        return Err(SignError::TooManySignatures(signers.len()));
    }
    for (i, signer) in signers.iter().enumerate() {
        let earlier = signers.iter().take(i);
        if earlier
            .into_iter()
            .any(|s| s.key_id == signer.key_id && s.name == signer.name)
        {
            return Err(SignError::DuplicateSigner(signer.key_id));
        }
    }
    Ok(())
}

/// Signs `text` with every signer: the text, a blank line, then one signature line per
/// signer in the given order.
///
/// # Errors
///
/// [`SignError`] if the text is not a valid note text (it must end in a newline and hold
/// no ASCII control character other than newline), there are no signers, two signers
/// share a key, or there are more than [`MAX_SIGNATURES`].
pub fn sign_note(text: &str, signers: &[&Signer]) -> Result<Vec<u8>, SignError> {
    check_text(text)?;
    check_signers(signers)?;
    let mut out = format!("{text}\n");
    for signer in signers {
        out.push_str(&signer.signature_line(text));
    }
    Ok(out.into_bytes())
}

/// Why bytes are not a well-formed signed note. [`NoteError`] shows these as
/// `malformed note: <reason>`, Go's `malformed note` plus where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MalformedNote {
    /// Invalid UTF-8.
    #[error("invalid UTF-8 at byte {0}")]
    InvalidUtf8(usize),
    /// An ASCII control character other than newline.
    #[error("control character 0x{byte:02x} at byte {at}")]
    ControlCharacter {
        /// Byte offset in the note.
        at: usize,
        /// The character.
        byte: u8,
    },
    /// No blank line separates a text from signatures.
    #[error("no blank line before the signatures")]
    NoSignatureBlock,
    /// Nothing after the blank line.
    #[error("no signature lines after the blank line")]
    EmptySignatureBlock,
    /// The note does not end with a newline.
    #[error("the last signature line does not end with a newline")]
    MissingFinalNewline,
    /// A line in the signature block without the em dash and space.
    #[error("signature line {0} does not start with an em dash and a space")]
    NotASignatureLine(usize),
    /// A signature line whose key name is not valid.
    #[error("signature line {0} has an invalid key name")]
    InvalidKeyName(usize),
    /// A signature that is missing or not canonical base64.
    #[error("signature line {0} has no canonical base64 signature")]
    InvalidBase64(usize),
    /// A signature shorter than a key ID and one byte.
    #[error("signature line {0} is shorter than a key id and a signature")]
    SignatureTooShort(usize),
    /// More than [`MAX_SIGNATURES`] signature lines.
    #[error("more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
}

/// Why a note did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// The bytes are not a well-formed signed note.
    #[error("malformed note: {0}")]
    Malformed(MalformedNote),
    /// A trusted key's signature did not verify: the whole note is rejected.
    #[error("invalid signature for key {name}+{key_id}")]
    InvalidSignature {
        /// The key's name.
        name: String,
        /// The key's ID.
        key_id: KeyId,
    },
    /// A signature names a (name, key ID) that two different trusted keys share.
    #[error("ambiguous key {name}+{key_id}")]
    AmbiguousKey {
        /// The key name.
        name: String,
        /// The key ID.
        key_id: KeyId,
    },
    /// The note parsed, but no trusted key signed it.
    #[error("note has no verifiable signatures")]
    UnverifiedNote {
        /// The signatures it does carry, from keys not in the trusted set.
        unverified: Vec<NoteSignature>,
    },
}

impl From<MalformedNote> for NoteError {
    fn from(reason: MalformedNote) -> Self {
        NoteError::Malformed(reason)
    }
}

/// Checks the whole note: UTF-8 without ASCII control characters other than newline.
fn check_note_chars(note: &[u8]) -> Result<&str, MalformedNote> {
    let utf8 = std::str::from_utf8(note);
    let valid_len = utf8
        .as_ref()
        .map_or_else(std::str::Utf8Error::valid_up_to, |text| text.len());
    if let Some((at, &byte)) = note
        .iter()
        .take(valid_len)
        .enumerate()
        .find(|&(_, &b)| b < 0x20 && b != b'\n')
    {
        return Err(MalformedNote::ControlCharacter { at, byte });
    }
    utf8.map_err(|e| MalformedNote::InvalidUtf8(e.valid_up_to()))
}

/// One parsed signature line.
struct ParsedLine<'a> {
    /// The line after the prefix, for Go's duplicate detection.
    body: &'a str,
    signature: NoteSignature,
    /// The signature bytes after the key ID.
    raw: Vec<u8>,
}

fn parse_signature_line(line: &str, number: usize) -> Result<ParsedLine<'_>, MalformedNote> {
    let body = line
        .strip_prefix(SIGNATURE_LINE_PREFIX)
        .ok_or(MalformedNote::NotASignatureLine(number))?;
    let (name, b64) = body.split_once(' ').unwrap_or((body, ""));
    if !is_valid_key_name(name) {
        return Err(MalformedNote::InvalidKeyName(number));
    }
    if b64.is_empty() {
        return Err(MalformedNote::InvalidBase64(number));
    }
    let blob = BASE64
        .decode(b64)
        .map_err(|_| MalformedNote::InvalidBase64(number))?;
    let Some((key_id, raw)) = blob.split_first_chunk::<4>() else {
        return Err(MalformedNote::SignatureTooShort(number));
    };
    if raw.is_empty() {
        return Err(MalformedNote::SignatureTooShort(number));
    }
    Ok(ParsedLine {
        body,
        signature: NoteSignature {
            name: name.to_owned(),
            key_id: KeyId(u32::from_be_bytes(*key_id)),
            base64: b64.to_owned(),
        },
        raw: raw.to_vec(),
    })
}

/// Opens a signed note: checks its form and every signature from a trusted key.
///
/// Steps, as in Go's `note.Open`: the note must be UTF-8 without ASCII control characters
/// other than newline; it splits at its last blank line into the text (up to and
/// including the newline before the blank line) and the signature lines, which must end
/// with a newline; each line must be `— <name> <base64>` with a valid key name and at
/// least 5 decoded bytes; at most 100 lines are read. A signature from an unknown
/// (name, key ID) is recorded as unverified (identical lines once); a repeated signature
/// by a trusted key is skipped without being checked; the first trusted signature that
/// fails rejects the note.
///
/// # Errors
///
/// [`NoteError::Malformed`] for a malformed note, [`NoteError::InvalidSignature`] if a
/// trusted key's signature fails, [`NoteError::AmbiguousKey`] if two trusted keys share
/// a signature's name and ID, [`NoteError::UnverifiedNote`] if no trusted key signed.
pub fn open(note: &[u8], known: &Verifiers) -> Result<VerifiedNote, NoteError> {
    let note = check_note_chars(note)?;
    let split = note.rfind("\n\n").ok_or(MalformedNote::NoSignatureBlock)?;
    // `split` and `split + 1` are newlines, so both cuts fall on character boundaries.
    let (text, rest) = note
        .split_at_checked(split.saturating_add(1))
        .ok_or(MalformedNote::NoSignatureBlock)?;
    let block = rest.strip_prefix('\n').unwrap_or(rest);
    if block.is_empty() {
        return Err(MalformedNote::EmptySignatureBlock.into());
    }
    let lines = block
        .strip_suffix('\n')
        .ok_or(MalformedNote::MissingFinalNewline)?;

    let mut verified: Vec<NoteSignature> = Vec::new();
    let mut unverified: Vec<NoteSignature> = Vec::new();
    let mut unverified_lines: Vec<&str> = Vec::new();
    for (i, line) in lines.split('\n').enumerate() {
        let number = i.saturating_add(1);
        let parsed = parse_signature_line(line, number)?;
        if number > MAX_SIGNATURES {
            return Err(MalformedNote::TooManySignatures.into());
        }
        let NoteSignature { name, key_id, .. } = &parsed.signature;
        match known.lookup(name, *key_id) {
            Lookup::Unknown => {
                if !unverified_lines.contains(&parsed.body) {
                    unverified_lines.push(parsed.body);
                    unverified.push(parsed.signature);
                }
            }
            Lookup::Ambiguous => {
                return Err(NoteError::AmbiguousKey {
                    name: name.clone(),
                    key_id: *key_id,
                });
            }
            Lookup::Found(verifier) => {
                if verified
                    .iter()
                    .any(|s| s.key_id == *key_id && s.name == *name)
                {
                    continue;
                }
                if !verifier.verify(text.as_bytes(), &parsed.raw) {
                    return Err(NoteError::InvalidSignature {
                        name: name.clone(),
                        key_id: *key_id,
                    });
                }
                verified.push(parsed.signature);
            }
        }
    }
    if verified.is_empty() {
        return Err(NoteError::UnverifiedNote { unverified });
    }
    Ok(VerifiedNote {
        text: text.to_owned(),
        verified,
        unverified,
    })
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                        then you don't know what your problem is.\n";
    const PETER_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";

    fn signer(name: &str, seed_byte: u8) -> Signer {
        Signer::from_seed(name, &[seed_byte; 32]).unwrap()
    }

    fn trusting(signers: &[&Signer]) -> Verifiers {
        signers.iter().map(|s| s.verifier()).collect()
    }

    #[test]
    fn go_test_key_round_trips_and_signs_deterministically() {
        let peter = Signer::from_skey(PETER_SKEY).unwrap();
        assert_eq!(peter.name(), "PeterNeumann");
        assert_eq!(peter.key_id(), KeyId(0xc74f_20a3));
        assert_eq!(peter.to_skey(), PETER_SKEY);
        assert_eq!(peter.verifier().to_vkey(), PETER_VKEY);
        assert_eq!(Verifier::from_vkey(PETER_VKEY).unwrap(), peter.verifier());
        assert_eq!(
            peter.sign(TEXT).unwrap(),
            "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
        );
        let debug = format!("{peter:?}");
        assert!(debug.contains("PeterNeumann") && !debug.contains("AYEKF"));
    }

    #[test]
    fn key_ids_follow_the_spec() {
        let name = "example.com/foo";
        let key = hex::decode("e932791ae6e7a840a46164c904786426d5e7821dd8b29a00d61cae72afdd4da4")
            .unwrap();
        assert_eq!(KeyId::compute(name, 1, &key), KeyId(0x530d_903a));
        assert_eq!(KeyId(0x0000_00ab).to_string(), "000000ab");
        // The type byte is part of the preimage.
        assert_ne!(KeyId::compute(name, 4, &key), KeyId(0x530d_903a));
    }

    #[test]
    fn sign_and_open_with_several_signers() {
        let (a, b, c) = (
            signer("a.example/log", 1),
            signer("b.example/w", 2),
            signer("c.example/w", 3),
        );
        let note = sign_note(TEXT, &[&a, &b, &c]).unwrap();
        let text = std::str::from_utf8(&note).unwrap();
        assert!(text.starts_with(&format!("{TEXT}\n— a.example/log ")));
        assert_eq!(text.lines().count(), 2 + 1 + 3);

        let opened = open(&note, &trusting(&[&a, &b, &c])).unwrap();
        assert_eq!(opened.text(), TEXT);
        let names: Vec<_> = opened.verified().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a.example/log", "b.example/w", "c.example/w"]);
        assert!(opened.unverified().is_empty());
        assert!(opened.is_verified_by("b.example/w", b.key_id()));
        assert!(!opened.is_verified_by("b.example/w", a.key_id()));

        // Trusting only one of them: the others are kept as unverified.
        let opened = open(&note, &trusting(&[&b])).unwrap();
        assert_eq!(opened.verified().len(), 1);
        assert_eq!(opened.unverified().len(), 2);
        assert_eq!(opened.unverified()[0].name, "a.example/log");
    }

    #[test]
    fn rotation_accepts_either_trusted_key() {
        let old = signer("log.example", 1);
        let new = signer("log.example", 2);
        assert_ne!(old.key_id(), new.key_id());
        let both = trusting(&[&old, &new]);
        for signers in [vec![&old], vec![&new], vec![&old, &new]] {
            let note = sign_note(TEXT, &signers).unwrap();
            let opened = open(&note, &both).unwrap();
            assert_eq!(opened.verified().len(), signers.len());
        }
        // After rotation only the new key is trusted: an old-only note does not open.
        let note = sign_note(TEXT, &[&old]).unwrap();
        assert!(matches!(
            open(&note, &trusting(&[&new])),
            Err(NoteError::UnverifiedNote { unverified }) if unverified.len() == 1
        ));
    }

    #[test]
    fn unknown_keys_are_ignored_but_never_enough() {
        let known = signer("known", 1);
        let stranger = signer("stranger", 9);
        // Same name as the known key, different key: a different key ID, so unknown.
        let impostor = signer("known", 8);
        let note = sign_note(TEXT, &[&stranger, &impostor, &known]).unwrap();
        let opened = open(&note, &trusting(&[&known])).unwrap();
        assert_eq!(opened.verified().len(), 1);
        assert_eq!(opened.unverified().len(), 2);

        let note = sign_note(TEXT, &[&stranger]).unwrap();
        let err = open(&note, &trusting(&[&known])).unwrap_err();
        assert_eq!(err.to_string(), "note has no verifiable signatures");
        assert_eq!(
            open(&note, &Verifiers::new()).unwrap_err().to_string(),
            "note has no verifiable signatures"
        );
    }

    #[test]
    fn a_bad_signature_from_a_known_key_rejects_the_note() {
        let (a, b) = (signer("a", 1), signer("b", 2));
        // b's line carries a's signature bytes under b's name and ID.
        let a_line = a.sign(TEXT).unwrap();
        let a_sig = a_line.split(' ').nth(2).unwrap().trim_end();
        let mut blob = BASE64.decode(a_sig).unwrap();
        blob[..4].copy_from_slice(&b.key_id().to_be_bytes());
        let forged = format!("{TEXT}\n{a_line}— b {}\n", BASE64.encode(&blob));
        let err = open(forged.as_bytes(), &trusting(&[&a, &b])).unwrap_err();
        assert_eq!(
            err,
            NoteError::InvalidSignature {
                name: "b".into(),
                key_id: b.key_id()
            }
        );
        assert_eq!(
            err.to_string(),
            format!("invalid signature for key b+{}", b.key_id())
        );
        // With b unknown, the same note opens on a's signature.
        assert!(open(forged.as_bytes(), &trusting(&[&a])).is_ok());
    }

    #[test]
    fn tampered_text_rejects() {
        let a = signer("a", 1);
        let note = sign_note(TEXT, &[&a]).unwrap();
        for at in [0, 10, TEXT.len() - 2] {
            let mut bad = note.clone();
            bad[at] ^= 0x01;
            assert!(
                matches!(
                    open(&bad, &trusting(&[&a])),
                    Err(NoteError::InvalidSignature { .. })
                ),
                "byte {at}"
            );
        }
        // Appending a line to the text also breaks the signature.
        let text = String::from_utf8(note).unwrap();
        let extended = text.replacen(TEXT, &format!("{TEXT}extra\n"), 1);
        assert!(matches!(
            open(extended.as_bytes(), &trusting(&[&a])),
            Err(NoteError::InvalidSignature { .. })
        ));
    }

    #[test]
    fn duplicate_lines_are_handled_as_in_go() {
        let (a, x) = (signer("a", 1), signer("x", 2));
        let a_line = a.sign(TEXT).unwrap();
        let x_line = x.sign(TEXT).unwrap();
        // A second, garbage signature by the known key is skipped without being checked.
        let mut junk = BASE64
            .decode(a_line.split(' ').nth(2).unwrap().trim_end())
            .unwrap();
        junk[10] ^= 0xff;
        let junk_line = format!("— a {}\n", BASE64.encode(&junk));
        let note = format!("{TEXT}\n{a_line}{junk_line}{x_line}{x_line}");
        let opened = open(note.as_bytes(), &trusting(&[&a])).unwrap();
        assert_eq!(opened.verified().len(), 1);
        assert_eq!(opened.unverified().len(), 1, "identical unknown lines once");
        // The garbage line first: it is checked, and rejects the note.
        let note = format!("{TEXT}\n{junk_line}{a_line}");
        assert!(matches!(
            open(note.as_bytes(), &trusting(&[&a])),
            Err(NoteError::InvalidSignature { .. })
        ));
    }

    #[test]
    fn signature_count_limit() {
        let a = signer("a", 1);
        let line = a.sign(TEXT).unwrap();
        let note = |n: usize| format!("{TEXT}\n{}", line.repeat(n));
        assert!(open(note(MAX_SIGNATURES).as_bytes(), &trusting(&[&a])).is_ok());
        assert_eq!(
            open(note(MAX_SIGNATURES + 1).as_bytes(), &trusting(&[&a])),
            Err(NoteError::Malformed(MalformedNote::TooManySignatures))
        );
    }

    #[test]
    fn ambiguous_trusted_keys() {
        let a = signer("a", 1);
        let real = a.verifier();
        // A second trusted key claiming a's name and ID (only constructible by hand).
        let mut clash = signer("a", 2).verifier();
        clash.key_id = a.key_id();
        let mut set = Verifiers::new();
        assert!(set.insert(real.clone()));
        assert!(!set.insert(real), "the same key twice is one key");
        assert!(set.insert(clash));
        let note = sign_note(TEXT, &[&a]).unwrap();
        assert_eq!(
            open(&note, &set).unwrap_err().to_string(),
            format!("ambiguous key a+{}", a.key_id())
        );
    }

    #[test]
    fn malformed_notes() {
        let a = signer("a", 1);
        let known = trusting(&[&a]);
        let line = a.sign(TEXT).unwrap();
        let sig = line.split(' ').nth(2).unwrap().trim_end().to_owned();
        let cases: Vec<(String, MalformedNote)> = vec![
            (TEXT.to_owned(), MalformedNote::NoSignatureBlock),
            (format!("{TEXT}\n"), MalformedNote::EmptySignatureBlock),
            (
                format!("{TEXT}\n{}", line.trim_end()),
                MalformedNote::MissingFinalNewline,
            ),
            (
                format!("{TEXT}\n{line}- a {sig}\n"),
                MalformedNote::NotASignatureLine(2),
            ),
            (
                format!("{TEXT}\n—  a {sig}\n"),
                MalformedNote::InvalidKeyName(1),
            ),
            (
                format!("{TEXT}\n— a+b {sig}\n"),
                MalformedNote::InvalidKeyName(1),
            ),
            (
                format!("{TEXT}\n— a\u{a0}b {sig}\n"),
                MalformedNote::InvalidKeyName(1),
            ),
            (format!("{TEXT}\n— a\n"), MalformedNote::InvalidBase64(1)),
            (format!("{TEXT}\n— a \n"), MalformedNote::InvalidBase64(1)),
            (
                format!("{TEXT}\n— a {sig} \n"),
                MalformedNote::InvalidBase64(1),
            ),
            (
                format!("{TEXT}\n— a {}\n", sig.trim_end_matches('=')),
                MalformedNote::InvalidBase64(1),
            ),
            (
                format!("{TEXT}\n— a {}\n", BASE64.encode([0u8; 4])),
                MalformedNote::SignatureTooShort(1),
            ),
            (
                format!("{TEXT}\n— a AAA=\n"),
                MalformedNote::SignatureTooShort(1),
            ),
            (
                format!("x\ty\n\n{line}"),
                MalformedNote::ControlCharacter { at: 1, byte: b'\t' },
            ),
            (
                format!("{TEXT}\n{}\r\n", line.trim_end()),
                MalformedNote::ControlCharacter {
                    at: TEXT.len() + line.len(),
                    byte: b'\r',
                },
            ),
        ];
        for (note, reason) in cases {
            assert_eq!(
                open(note.as_bytes(), &known),
                Err(NoteError::Malformed(reason)),
                "{note:?}"
            );
        }
        let mut bad_utf8 = sign_note(TEXT, &[&a]).unwrap();
        bad_utf8.insert(3, 0xff);
        assert_eq!(
            open(&bad_utf8, &known),
            Err(NoteError::Malformed(MalformedNote::InvalidUtf8(3)))
        );
        assert_eq!(
            NoteError::Malformed(MalformedNote::NoSignatureBlock).to_string(),
            "malformed note: no blank line before the signatures"
        );
    }

    #[test]
    fn non_canonical_base64_is_rejected() {
        let a = signer("a", 1);
        let line = a.sign(TEXT).unwrap();
        let sig = line.split(' ').nth(2).unwrap().trim_end();
        // 68 bytes encode to 92 characters ending in "=": the last data character carries
        // two padding bits, which canonical base64 keeps zero.
        assert!(sig.ends_with('=') && !sig.ends_with("=="));
        let last = sig.as_bytes()[sig.len() - 2];
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let pos = alphabet.iter().position(|&c| c == last).unwrap();
        let mut tweaked = sig.as_bytes().to_vec();
        tweaked[sig.len() - 2] = alphabet[pos ^ 1];
        let note = format!("{TEXT}\n— a {}\n", String::from_utf8(tweaked).unwrap());
        assert_eq!(
            open(note.as_bytes(), &trusting(&[&a])),
            Err(NoteError::Malformed(MalformedNote::InvalidBase64(1)))
        );
    }

    #[test]
    fn signing_checks_its_inputs() {
        let (a, b) = (signer("a", 1), signer("b", 2));
        assert_eq!(
            sign_note("no newline", &[&a]),
            Err(SignError::MissingFinalNewline)
        );
        assert_eq!(
            sign_note("tab\there\n", &[&a]),
            Err(SignError::ControlCharacter { at: 3, byte: b'\t' })
        );
        assert_eq!(sign_note(TEXT, &[]), Err(SignError::NoSigners));
        assert_eq!(
            sign_note(TEXT, &[&a, &b, &a]),
            Err(SignError::DuplicateSigner(a.key_id()))
        );
        assert_eq!(a.sign("x"), Err(SignError::MissingFinalNewline));
        let many: Vec<Signer> = (0..=MAX_SIGNATURES)
            .map(|i| signer(&format!("s{i}"), 7))
            .collect();
        let refs: Vec<&Signer> = many.iter().collect();
        assert_eq!(
            sign_note(TEXT, &refs),
            Err(SignError::TooManySignatures(101))
        );
        assert!(sign_note(TEXT, &refs[..MAX_SIGNATURES]).is_ok());
    }

    #[test]
    fn texts_with_blank_lines_round_trip() {
        let a = signer("a", 1);
        for text in [
            "\n",
            "a\n\nb\n",
            "a\n\n",
            "\n\n\n",
            "— x y\n",
            "ünïcødé ✓\n",
        ] {
            let note = sign_note(text, &[&a]).unwrap();
            let opened = open(&note, &trusting(&[&a])).unwrap();
            assert_eq!(opened.text(), text);
        }
    }

    #[test]
    fn add_signatures_keeps_other_signatures() {
        let (log, w1, w2) = (signer("log", 1), signer("w1", 2), signer("w2", 3));
        let note = sign_note(TEXT, &[&log, &w1]).unwrap();
        let opened = open(&note, &trusting(&[&log])).unwrap();
        // Re-signing by w1 replaces its old line; w2 is new.
        let cosigned = opened.add_signatures(&[&w1, &w2]).unwrap();
        let text = String::from_utf8(cosigned.clone()).unwrap();
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("— "))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        assert_eq!(names, ["log", "w1", "w2"]);
        let all = open(&cosigned, &trusting(&[&log, &w1, &w2])).unwrap();
        assert_eq!(all.verified().len(), 3);
    }

    #[test]
    fn key_strings_are_parsed_strictly() {
        let peter = Signer::from_skey(PETER_SKEY).unwrap();
        let key_b64 = PETER_VKEY.rsplit('+').next().unwrap();
        let cases: Vec<(String, KeyError)> = vec![
            ("PeterNeumann".into(), KeyError::MissingPart),
            ("PeterNeumann+c74f20a3".into(), KeyError::MissingPart),
            (format!("+c74f20a3+{key_b64}"), KeyError::InvalidName),
            (
                format!("Peter Neumann+c74f20a3+{key_b64}"),
                KeyError::InvalidName,
            ),
            (
                format!("PeterNeumann+C74F20A3+{key_b64}"),
                KeyError::InvalidKeyIdHex,
            ),
            (
                format!("PeterNeumann+c74f20a+{key_b64}"),
                KeyError::InvalidKeyIdHex,
            ),
            (
                format!("PeterNeumann+c74f20a3+{key_b64}x"),
                KeyError::InvalidBase64,
            ),
            ("PeterNeumann+c74f20a3+".into(), KeyError::EmptyKey),
            (
                format!("PeterNeumann+c74f20a3+{}", BASE64.encode([1u8; 32])),
                KeyError::InvalidKeyLength { len: 31 },
            ),
            (
                format!(
                    "PeterNeumann+c74f20a3+{}",
                    BASE64.encode([&[2u8][..], &peter.public_key()].concat())
                ),
                KeyError::UnknownSignatureType(2),
            ),
            (
                format!("PeterNeumann+c74f20a4+{key_b64}"),
                KeyError::KeyIdMismatch {
                    stated: KeyId(0xc74f_20a4),
                    computed: KeyId(0xc74f_20a3),
                },
            ),
        ];
        for (vkey, err) in cases {
            assert_eq!(Verifier::from_vkey(&vkey), Err(err), "{vkey}");
        }
        // A y coordinate with no curve point (found by search over small values).
        let off_curve = (0u8..=255)
            .map(|b| {
                let mut k = [0u8; 32];
                k[0] = b;
                k
            })
            .find(|k| VerifyingKey::from_bytes(k).is_err())
            .unwrap();
        assert_eq!(
            Verifier::new_ed25519("x", &off_curve),
            Err(KeyError::InvalidPublicKey)
        );

        assert!(matches!(
            Signer::from_skey(&PETER_SKEY.replace("PRIVATE+KEY+", "PRIVATE+KEYS+")),
            Err(KeyError::NotASigningKey)
        ));
        assert!(matches!(
            Signer::from_skey(&PETER_SKEY.replace("c74f20a3", "c74f20a4")),
            Err(KeyError::KeyIdMismatch { .. })
        ));
        assert!(matches!(
            Signer::from_skey(PETER_VKEY),
            Err(KeyError::NotASigningKey)
        ));
        assert!(matches!(
            Signer::from_seed("bad name", &[0; 32]),
            Err(KeyError::InvalidName)
        ));
        assert!(PETER_VKEY.parse::<Verifier>().is_ok());
        assert!(PETER_SKEY.parse::<Signer>().is_ok());
    }

    #[test]
    fn cosignature_v1_timestamps() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let verifier =
            Verifier::new_cosignature_v1("w.example", &key.verifying_key().to_bytes()).unwrap();
        assert_eq!(verifier.signature_type(), SignatureType::CosignatureV1);
        assert_eq!(
            verifier.key_id(),
            KeyId::compute("w.example", 4, key.verifying_key().as_bytes())
        );
        let cosign = |timestamp: u64| {
            let message = format!("cosignature/v1\ntime {timestamp}\n{TEXT}");
            let mut blob = timestamp.to_be_bytes().to_vec();
            blob.extend_from_slice(&key.sign(message.as_bytes()).to_bytes());
            blob
        };
        let newest = i64::MAX.unsigned_abs();
        for timestamp in [0, 1_679_315_147, newest] {
            assert!(verifier.verify(TEXT.as_bytes(), &cosign(timestamp)));
        }
        // Past 2^63 - 1 the signature is refused even though it is genuine.
        assert!(!verifier.verify(TEXT.as_bytes(), &cosign(newest + 1)));
        assert!(!verifier.verify(TEXT.as_bytes(), &cosign(u64::MAX)));
        // The timestamp is part of the signed message, and the length is exact.
        let mut moved = cosign(7);
        moved[7] = 8;
        assert!(!verifier.verify(TEXT.as_bytes(), &moved));
        let blob = cosign(7);
        assert!(!verifier.verify(TEXT.as_bytes(), &blob[..71]));
        assert!(!verifier.verify(TEXT.as_bytes(), &[blob.as_slice(), &[0]].concat()));
        // A plain Ed25519 key never accepts a cosignature, and the other way round.
        let plain = Verifier::new_ed25519("w.example", &key.verifying_key().to_bytes()).unwrap();
        assert_ne!(plain.key_id(), verifier.key_id());
        assert!(!plain.verify(TEXT.as_bytes(), &blob));
        assert!(!verifier.verify(TEXT.as_bytes(), &key.sign(TEXT.as_bytes()).to_bytes()));
    }

    #[test]
    fn key_names() {
        for good in ["a", "example.com/log", "ünï", "a-b_c/d:1", "x=y"] {
            assert!(is_valid_key_name(good), "{good}");
        }
        for bad in ["", "a b", "a+b", "a\tb", "a\u{3000}b", "a\u{85}", "a\u{1}"] {
            assert!(!is_valid_key_name(bad), "{bad:?}");
        }
    }

    fn arb_note_like() -> impl Strategy<Value = Vec<u8>> {
        let line = prop_oneof![
            Just("— a ".to_owned()),
            Just("— ".to_owned()),
            "[A-Za-z0-9+/=]{0,100}",
            "[ -~\u{2014}]{0,20}",
        ];
        (
            "[ -~\n]{0,40}",
            proptest::collection::vec(line, 0..5),
            proptest::collection::vec(any::<u8>(), 0..3),
        )
            .prop_map(|(text, lines, junk)| {
                let mut out = text.into_bytes();
                out.extend_from_slice(b"\n\n");
                for line in lines {
                    out.extend_from_slice(line.as_bytes());
                    out.push(b'\n');
                }
                out.extend_from_slice(&junk);
                out
            })
    }

    proptest! {
        #[test]
        fn open_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let a = signer("a", 1);
            let _ = open(&bytes, &trusting(&[&a]));
        }

        #[test]
        fn open_never_panics_on_note_like_input(bytes in arb_note_like()) {
            let a = signer("a", 1);
            // Nothing here is signed by `a`, so nothing may open.
            prop_assert!(open(&bytes, &trusting(&[&a])).is_err());
        }

        #[test]
        fn key_strings_never_panic(s in "[ -~]{0,120}") {
            let _ = Verifier::from_vkey(&s);
            let _ = Signer::from_skey(&s);
        }

        #[test]
        fn sign_open_round_trip(text in "[^\\p{Cc}]{0,60}", seed in any::<[u8; 32]>()) {
            let text = format!("{text}\n");
            let s = Signer::from_seed("p.example", &seed).unwrap();
            let note = sign_note(&text, &[&s]).unwrap();
            let opened = open(&note, &trusting(&[&s])).unwrap();
            prop_assert_eq!(opened.text(), text.as_str());
            prop_assert_eq!(Signer::from_skey(&s.to_skey()).unwrap().public_key(), s.public_key());
            prop_assert_eq!(Verifier::from_vkey(&s.verifier().to_vkey()).unwrap(), s.verifier());
        }
    }
}
