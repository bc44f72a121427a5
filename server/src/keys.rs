//! Per-ledger checkpoint signing keys: `<data_dir>/keys/<ledger>.key`.
//!
//! Each file holds one C2SP signing-key string (`PRIVATE+KEY+<name>+<id>+<base64>`) and a
//! newline. A key is generated from the operating system's random source when its ledger is
//! created, written to a temporary file created with mode 0600 (never widened and then
//! narrowed), synced, and renamed into place. At start a key file that the group or others
//! can read is refused, with the `chmod` that fixes it.
//!
//! Back the key files up with the data directory: a ledger whose key is lost can still be
//! read and verified, but it cannot sign new checkpoints.

use std::fs::OpenOptions;
use std::io::Write as _;
#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use vouch_ledger_core::note::{KeyError, Signer};

/// The directory of the key files inside a data directory.
pub const KEYS_DIR: &str = "keys";

/// Why a key file could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// An I/O error.
    #[error("{op} of {path} failed: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The key file is missing.
    #[error(
        "{path} does not exist: the ledger cannot sign checkpoints without its key; restore it from the backup of the data directory"
    )]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The key file can be read by the group or others.
    #[error(
        "{path} has mode {mode:04o}: a signing key must be readable by its owner only; run `chmod 600 {path}` and check who could have read it"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file does not hold a valid signing key.
    #[error("{path} does not hold a valid signing key: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: KeyError,
    },
    /// The key's name is not usable.
    #[error("cannot make a signing key named {name:?}: {source}")]
    Name {
        /// The name.
        name: String,
        /// Why.
        source: KeyError,
    },
    /// The operating system's random source failed.
    #[error("no randomness for a new signing key: {0}")]
    Random(getrandom::Error),
}

/// The key file of `ledger`.
pub fn key_path(data_dir: &Path, ledger: &str) -> PathBuf {
    data_dir.join(KEYS_DIR).join(format!("{ledger}.key"))
}

/// A new signing key named `name` (the checkpoint origin) from fresh randomness.
///
/// # Errors
///
/// [`KeyFileError::Random`] if the random source fails; [`KeyFileError::Name`] for a name that
/// cannot name a key.
pub fn generate(name: &str) -> Result<Signer, KeyFileError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(KeyFileError::Random)?;
    let signer = Signer::from_seed(name, &seed).map_err(|source| KeyFileError::Name {
        name: name.to_owned(),
        source,
    });
    seed.fill(0);
    signer
}

/// Writes the key of `ledger` atomically with mode 0600, replacing a leftover file of an
/// interrupted creation.
///
/// # Errors
///
/// [`KeyFileError::Io`] naming the file and the operation.
pub fn write(data_dir: &Path, ledger: &str, signer: &Signer) -> Result<PathBuf, KeyFileError> {
    let dir = data_dir.join(KEYS_DIR);
    let io = |path: &Path, op: &'static str| {
        let path = path.to_path_buf();
        move |source| KeyFileError::Io { path, op, source }
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(&dir).map_err(io(&dir, "create"))?;
    let path = key_path(data_dir, ledger);
    let tmp = dir.join(format!(".{ledger}.key.tmp"));
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&tmp, "remove")(e)),
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(&tmp).map_err(io(&tmp, "create"))?;
    let mut text = signer.to_skey();
    text.push('\n');
    file.write_all(text.as_bytes()).map_err(io(&tmp, "write"))?;
    file.sync_all().map_err(io(&tmp, "fsync"))?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(io(&path, "rename"))?;
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io(&dir, "fsync"))?;
    Ok(path)
}

/// Reads the key of `ledger`, refusing a file the group or others can read.
///
/// # Errors
///
/// [`KeyFileError::Missing`], [`KeyFileError::Permissions`], [`KeyFileError::Invalid`],
/// [`KeyFileError::Io`].
pub fn load(data_dir: &Path, ledger: &str) -> Result<Signer, KeyFileError> {
    let path = key_path(data_dir, ledger);
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(KeyFileError::Missing { path });
        }
        Err(source) => {
            return Err(KeyFileError::Io {
                path,
                op: "stat",
                source,
            });
        }
    };
    #[cfg(unix)]
    {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Permissions { path, mode });
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let text = std::fs::read_to_string(&path).map_err(|source| KeyFileError::Io {
        path: path.clone(),
        op: "read",
        source,
    })?;
    Signer::from_skey(text.trim_end()).map_err(|source| KeyFileError::Invalid { path, source })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn written_keys_are_private_and_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let signer = generate("vouch.local/main").unwrap();
        let path = write(dir.path(), "main", &signer).unwrap();
        #[cfg(unix)]
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let loaded = load(dir.path(), "main").unwrap();
        assert_eq!(loaded.verifier(), signer.verifier());
        assert_ne!(
            generate("vouch.local/main").unwrap().verifier(),
            signer.verifier()
        );
    }

    #[cfg(unix)]
    #[test]
    fn readable_keys_are_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "main", &generate("o/main").unwrap()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = load(dir.path(), "main").unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        assert!(e.to_string().contains("0640"), "{e}");
    }

    #[test]
    fn missing_and_invalid_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = load(dir.path(), "x").unwrap_err();
        assert!(e.to_string().contains("x.key"), "{e}");
        write(dir.path(), "x", &generate("o/x").unwrap()).unwrap();
        let path = key_path(dir.path(), "x");
        std::fs::write(&path, "not a key\n").unwrap();
        #[cfg(unix)]
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = load(dir.path(), "x").unwrap_err();
        assert!(e.to_string().contains("valid signing key"), "{e}");
    }
}
