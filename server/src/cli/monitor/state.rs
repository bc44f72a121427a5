//! The monitor's state file: the last checkpoint it verified, kept across runs.
//!
//! The file is one JSON object, written by [`MonitorState::encode`] in a fixed layout
//! (`docs/operations.md`, "Monitoring", gives it byte for byte):
//!
//! ```text
//! {
//!   "format": "vouch-monitor-state",
//!   "version": 1,
//!   "ledger": "default",
//!   "origin": "vouch.local/default",
//!   "hash": "blake3",
//!   "tree_size": 6,
//!   "root_hash": "<64 hex digits>",
//!   "checkpoint": "<the signed note, as a JSON string>",
//!   "frontier": null
//! }
//! ```
//!
//! `frontier` is `null`, or the hex roots of the perfect subtrees of the tree at `tree_size`
//! (largest first, one per set bit of the size) when the last run rebuilt the tree from the
//! entries (`--entries`). Reading is strict and never repairs anything: an unknown `format` or
//! `version`, an unknown or missing member, a checkpoint that no trusted key signed, or
//! members that disagree with the signed checkpoint or with each other are errors that name
//! the file. A missing file is a new state. Writing is atomic: a temporary file beside it,
//! `fsync`, rename, and `fsync` of the directory.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use vouch_ledger_core::checkpoint::{Checkpoint, open_checkpoint};
use vouch_ledger_core::note::Verifiers;
use vouch_ledger_core::{Frontier, Hash, HashAlg, TreeSize};

/// The `format` member of every state file.
pub const STATE_FORMAT: &str = "vouch-monitor-state";

/// The state file version this build writes and reads.
pub const STATE_VERSION: u64 = 1;

/// What the monitor verified last, for one ledger.
// INVARIANT: `checkpoint` opens with the trusted keys and says `origin`, `tree_size` and
// `root`; `frontier`, when present, is at `tree_size` and folds to `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorState {
    /// The ledger's name on the server.
    pub ledger: String,
    /// The checkpoint origin.
    pub origin: String,
    /// The ledger's hash function.
    pub hash: HashAlg,
    /// The size of the last verified checkpoint.
    pub tree_size: TreeSize,
    /// Its root.
    pub root: Hash,
    /// The signed note, as the server sent it.
    pub checkpoint: String,
    /// The compact range of the tree at `tree_size`, when the entries were verified.
    pub frontier: Option<Frontier>,
}

/// Why a state file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The file exists but cannot be read, or the new state cannot be written.
    #[error("state file {}: cannot {action}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed: `read`, `write`, `rename`, ….
        action: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Not a state file of this layout.
    #[error(
        "state file {} is corrupt: {reason}; it was left as it is: repair it from a backup, or move it away to start a new state (which trusts the server's next checkpoint)",
        path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A state file of another version.
    #[error(
        "state file {} has version {found}, but this vouch reads version {STATE_VERSION} only; it was left as it is",
        path.display()
    )]
    UnknownVersion {
        /// The file.
        path: PathBuf,
        /// The version found, as written.
        found: String,
    },
    /// The stored checkpoint is not signed by any trusted key.
    #[error(
        "state file {}: its checkpoint does not verify with the trusted keys ({reason}); pass the key that signed it as well (after a key rotation, trust the old and the new key)",
        path.display()
    )]
    Untrusted {
        /// The file.
        path: PathBuf,
        /// Why the note did not open.
        reason: String,
    },
}

/// The file as serialised: members in this order.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    format: String,
    version: u64,
    ledger: String,
    origin: String,
    hash: String,
    tree_size: u64,
    root_hash: String,
    checkpoint: String,
    frontier: Option<Vec<String>>,
}

impl MonitorState {
    /// The state after verifying `checkpoint` (opened from `note`).
    pub fn new(
        ledger: &str,
        hash: HashAlg,
        checkpoint: &Checkpoint,
        note: &str,
        frontier: Option<Frontier>,
    ) -> Self {
        Self {
            ledger: ledger.to_owned(),
            origin: checkpoint.origin.clone(),
            hash,
            tree_size: checkpoint.size,
            root: checkpoint.root,
            checkpoint: note.to_owned(),
            frontier,
        }
    }

    /// The file's bytes: pretty JSON (two-space indent) in the member order of the module
    /// documentation, ending with one newline.
    pub fn encode(&self) -> Vec<u8> {
        let file = StateFile {
            format: STATE_FORMAT.to_owned(),
            version: STATE_VERSION,
            ledger: self.ledger.clone(),
            origin: self.origin.clone(),
            hash: self.hash.name().to_owned(),
            tree_size: self.tree_size.0,
            root_hash: self.root.to_hex(),
            checkpoint: self.checkpoint.clone(),
            frontier: self
                .frontier
                .as_ref()
                .map(|f| f.nodes().iter().map(Hash::to_hex).collect()),
        };
        // Serialising plain strings and numbers cannot fail.
        let mut out = serde_json::to_vec_pretty(&file).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Reads a state file's bytes, checking every member against the signed checkpoint.
    ///
    /// # Errors
    ///
    /// [`StateError::Corrupt`], [`StateError::UnknownVersion`] or [`StateError::Untrusted`],
    /// naming `path`.
    pub fn decode(path: &Path, bytes: &[u8], trusted: &Verifiers) -> Result<Self, StateError> {
        let corrupt = |reason: String| StateError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        // The format and version first, so that a newer file is reported as such and not as
        // a file with unknown members.
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| corrupt(format!("not JSON ({e})")))?;
        let Value::Object(members) = &value else {
            return Err(corrupt("not a JSON object".to_owned()));
        };
        if members.get("format").and_then(Value::as_str) != Some(STATE_FORMAT) {
            return Err(corrupt(format!("\"format\" is not \"{STATE_FORMAT}\"")));
        }
        match members.get("version") {
            Some(v) if v.as_u64() == Some(STATE_VERSION) => {}
            Some(v) => {
                return Err(StateError::UnknownVersion {
                    path: path.to_path_buf(),
                    found: v.to_string(),
                });
            }
            None => return Err(corrupt("\"version\" is missing".to_owned())),
        }
        let file: StateFile = serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
        if !vouch_storage::valid_ledger_name(&file.ledger) {
            return Err(corrupt(format!(
                "\"ledger\" {:?} is not a ledger name",
                file.ledger
            )));
        }
        let hash: HashAlg = file
            .hash
            .parse()
            .map_err(|e| corrupt(format!("\"hash\": {e}")))?;
        let root = Hash::from_hex(&file.root_hash)
            .map_err(|_| corrupt("\"root_hash\" is not 64 hex digits".to_owned()))?;
        let (checkpoint, _) =
            open_checkpoint(file.checkpoint.as_bytes(), trusted).map_err(|e| {
                StateError::Untrusted {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                }
            })?;
        if checkpoint.origin != file.origin
            || checkpoint.size.0 != file.tree_size
            || checkpoint.root != root
        {
            return Err(corrupt(format!(
                "the signed checkpoint says origin {:?}, tree size {} and root {}, but the file says {:?}, {} and {}",
                checkpoint.origin,
                checkpoint.size,
                checkpoint.root,
                file.origin,
                file.tree_size,
                root
            )));
        }
        let frontier = match file.frontier {
            None => None,
            Some(hexes) => {
                let hashes = hexes
                    .iter()
                    .map(|h| Hash::from_hex(h))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| corrupt("a \"frontier\" hash is not 64 hex digits".to_owned()))?;
                let frontier = Frontier::restore(hash, checkpoint.size, hashes)
                    .map_err(|e| corrupt(format!("\"frontier\": {e}")))?;
                if frontier.root() != root {
                    return Err(corrupt(format!(
                        "\"frontier\" folds to {}, not to the root {root}",
                        frontier.root()
                    )));
                }
                Some(frontier)
            }
        };
        Ok(Self {
            ledger: file.ledger,
            origin: file.origin,
            hash,
            tree_size: checkpoint.size,
            root,
            checkpoint: file.checkpoint,
            frontier,
        })
    }

    /// Reads the state file at `path`; `None` if there is none yet.
    ///
    /// # Errors
    ///
    /// [`StateError`]: an unreadable file, or one [`MonitorState::decode`] refuses.
    pub fn load(path: &Path, trusted: &Verifiers) -> Result<Option<Self>, StateError> {
        match std::fs::read(path) {
            Ok(bytes) => Self::decode(path, &bytes, trusted).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Io {
                path: path.to_path_buf(),
                action: "read",
                source,
            }),
        }
    }

    /// Replaces the state file at `path` atomically: `<path>.tmp` is written and synced,
    /// renamed over `path`, and the directory synced, so a crash leaves the old state or the
    /// new one, never a mix.
    ///
    /// # Errors
    ///
    /// [`StateError::Io`] naming the step that failed.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let io = |action: &'static str| {
            move |source| StateError::Io {
                path: path.to_path_buf(),
                action,
                source,
            }
        };
        let tmp = temporary_path(path);
        let mut file = std::fs::File::create(&tmp).map_err(io("create a temporary file"))?;
        file.write_all(&self.encode()).map_err(io("write"))?;
        file.sync_all().map_err(io("fsync"))?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(io("rename"))?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync the directory"))
    }
}

/// `<path>.tmp`: the temporary file of [`MonitorState::save`].
pub fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// `<path>.lock`: held while a monitor uses the state file.
pub fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use vouch_ledger_core::Signer;

    use super::*;

    const ORIGIN: &str = "example.com/log";

    fn signer() -> Signer {
        Signer::from_seed(ORIGIN, &[7; 32]).unwrap()
    }

    fn trusted() -> Verifiers {
        std::iter::once(signer().verifier()).collect()
    }

    /// A state at `size` leaves `0..size`, with or without its frontier.
    fn state(size: u8, with_frontier: bool) -> MonitorState {
        let alg = HashAlg::Sha256;
        let mut frontier = Frontier::new(alg);
        for i in 0..size {
            frontier.push(alg.leaf_hash(&[i]), |_, _| {});
        }
        let cp = Checkpoint::new(ORIGIN, frontier.size(), frontier.root());
        let note = String::from_utf8(cp.sign(&[&signer()]).unwrap()).unwrap();
        MonitorState::new(
            "default",
            alg,
            &cp,
            &note,
            with_frontier.then_some(frontier),
        )
    }

    fn decode(bytes: &[u8]) -> Result<MonitorState, StateError> {
        MonitorState::decode(Path::new("m.json"), bytes, &trusted())
    }

    fn edit(state: &MonitorState, f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Vec<u8> {
        let mut value: Value = serde_json::from_slice(&state.encode()).unwrap();
        f(value.as_object_mut().unwrap());
        serde_json::to_vec(&value).unwrap()
    }

    #[test]
    fn the_layout_is_fixed() {
        let s = state(5, true);
        let text = String::from_utf8(s.encode()).unwrap();
        let note = serde_json::to_string(&s.checkpoint).unwrap();
        let nodes: Vec<String> = s
            .frontier
            .as_ref()
            .unwrap()
            .nodes()
            .iter()
            .map(Hash::to_hex)
            .collect();
        assert_eq!(
            text,
            format!(
                "{{\n  \"format\": \"vouch-monitor-state\",\n  \"version\": 1,\n  \"ledger\": \"default\",\n  \"origin\": \"example.com/log\",\n  \"hash\": \"sha256\",\n  \"tree_size\": 5,\n  \"root_hash\": \"{}\",\n  \"checkpoint\": {note},\n  \"frontier\": [\n    \"{}\",\n    \"{}\"\n  ]\n}}\n",
                s.root.to_hex(),
                nodes[0],
                nodes[1]
            )
        );
        assert!(
            String::from_utf8(state(5, false).encode())
                .unwrap()
                .ends_with("  \"frontier\": null\n}\n")
        );
    }

    #[test]
    fn states_round_trip() {
        for s in [
            state(0, false),
            state(0, true),
            state(1, true),
            state(6, true),
            state(7, false),
        ] {
            assert_eq!(decode(&s.encode()).unwrap(), s);
        }
    }

    #[test]
    fn damaged_files_are_refused_by_name() {
        let s = state(6, true);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (Vec::new(), "not JSON"),
            (b"{\"format\": \"vouch-monitor-state\"".to_vec(), "not JSON"),
            (b"[1, 2]".to_vec(), "not a JSON object"),
            (
                edit(&s, |m| {
                    m.insert("format".into(), "other".into());
                }),
                "\"format\" is not",
            ),
            (
                edit(&s, |m| {
                    m.remove("version");
                }),
                "\"version\" is missing",
            ),
            (
                edit(&s, |m| {
                    m.insert("extra".into(), 1.into());
                }),
                "unknown field `extra`",
            ),
            (
                edit(&s, |m| {
                    m.remove("root_hash");
                }),
                "missing field `root_hash`",
            ),
            (
                edit(&s, |m| {
                    m.insert("tree_size".into(), 5.into());
                }),
                "the signed checkpoint says",
            ),
            (
                edit(&s, |m| {
                    m.insert("root_hash".into(), "ab".into());
                }),
                "\"root_hash\" is not 64 hex digits",
            ),
            (
                edit(&s, |m| {
                    m.insert("hash".into(), "md5".into());
                }),
                "unknown hash function",
            ),
            (
                edit(&s, |m| {
                    m.insert("ledger".into(), "../x".into());
                }),
                "is not a ledger name",
            ),
            (
                edit(&s, |m| {
                    m.insert("frontier".into(), serde_json::json!([s.root.to_hex()]));
                }),
                "holds 2 hashes, got 1",
            ),
            (
                edit(&s, |m| {
                    let nodes = m["frontier"].as_array().unwrap().clone();
                    m.insert(
                        "frontier".into(),
                        Value::Array(nodes.into_iter().rev().collect()),
                    );
                }),
                "\"frontier\" folds to",
            ),
        ];
        for (bytes, expected) in cases {
            let e = decode(&bytes).unwrap_err();
            assert!(
                matches!(e, StateError::Corrupt { .. }),
                "{expected}: not corrupt: {e}"
            );
            let text = e.to_string();
            assert!(text.starts_with("state file m.json is corrupt: "), "{text}");
            assert!(text.contains(expected), "{expected:?} not in {text:?}");
        }
    }

    #[test]
    fn other_versions_and_untrusted_checkpoints_are_refused() {
        let s = state(3, false);
        let newer = edit(&s, |m| {
            m.insert("version".into(), 2.into());
            m.insert("something_new".into(), true.into());
        });
        let e = decode(&newer).unwrap_err();
        assert!(
            matches!(&e, StateError::UnknownVersion { found, .. } if found == "2"),
            "{e}"
        );
        assert!(e.to_string().contains("has version 2"), "{e}");

        let other = Signer::from_seed(ORIGIN, &[8; 32]).unwrap();
        let e = MonitorState::decode(
            Path::new("m.json"),
            &s.encode(),
            &std::iter::once(other.verifier()).collect(),
        )
        .unwrap_err();
        assert!(matches!(e, StateError::Untrusted { .. }), "{e}");
    }

    #[test]
    fn saving_replaces_the_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("monitor.json");
        assert!(MonitorState::load(&path, &trusted()).unwrap().is_none());
        let first = state(2, true);
        first.save(&path).unwrap();
        assert_eq!(MonitorState::load(&path, &trusted()).unwrap(), Some(first));
        let second = state(9, false);
        second.save(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), second.encode());
        assert!(!temporary_path(&path).exists());
        assert_eq!(lock_path(&path), dir.path().join("monitor.json.lock"));
    }
}
