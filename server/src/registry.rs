//! The open ledgers of a running server.
//!
//! At start every ledger of the data directory is opened with its signing key and the
//! configured [`LedgerOptions`]; the default ledger is created if it does not exist yet.
//! Ledgers created through the API join the registry at once. At shutdown every ledger is
//! closed: its sequencer finishes the submitted appends, signs a final checkpoint, writes the
//! index head and syncs.
//!
//! Everything here blocks on disk: call it from `spawn_blocking` in async code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use vouch_ledger_core::HashAlg;
use vouch_storage::vfs::{RealVfs, Vfs};
use vouch_storage::{DataDir, Ledger, LedgerConfig, LedgerOptions, OpenError, valid_ledger_name};

use crate::config::Config;
use crate::keys::{self, KeyFileError};

/// Why the registry could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The data directory could not be opened.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: OpenError,
    },
    /// A ledger's key could not be loaded.
    #[error("ledger {ledger:?}: {source}")]
    Key {
        /// The ledger.
        ledger: String,
        /// Why.
        source: KeyFileError,
    },
    /// A ledger could not be opened.
    #[error("ledger {ledger:?}: {source}")]
    Open {
        /// The ledger.
        ledger: String,
        /// Why.
        source: OpenError,
    },
    /// The default ledger could not be created.
    #[error("creating ledger {ledger:?}: {source}")]
    Create {
        /// The ledger.
        ledger: String,
        /// Why.
        source: CreateError,
    },
}

/// Why a ledger could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// The name is not a ledger name.
    #[error(
        "invalid ledger name {0:?}: use 1 to 64 of a-z, 0-9, '-', '_', '.', starting with a letter or digit"
    )]
    InvalidName(String),
    /// The origin cannot be a checkpoint origin and key name.
    #[error(
        "invalid origin {0:?}: it must be non-empty, without white space, '+' or control characters"
    )]
    InvalidOrigin(String),
    /// A ledger of that name exists.
    #[error("a ledger named {0:?} exists already")]
    AlreadyExists(String),
    /// The signing key could not be made or written.
    #[error(transparent)]
    Key(#[from] KeyFileError),
    /// The storage engine refused.
    #[error(transparent)]
    Storage(#[from] OpenError),
}

/// Why a ledger could not be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// The name is not a ledger name.
    #[error(
        "invalid ledger name {0:?}: use 1 to 64 of a-z, 0-9, '-', '_', '.', starting with a letter or digit"
    )]
    InvalidName(String),
    /// No open ledger has that name.
    #[error("no ledger named {0:?}")]
    NotFound(String),
}

/// How new ledgers are made.
#[derive(Debug, Clone)]
struct Defaults {
    hash: HashAlg,
    origin_prefix: String,
    leaf_hash_index: bool,
}

/// The open ledgers, by name.
#[derive(Debug)]
pub struct Registry {
    data_dir: DataDir,
    root: PathBuf,
    options: LedgerOptions,
    defaults: Defaults,
    default_ledger: String,
    ledgers: RwLock<BTreeMap<String, Arc<Ledger>>>,
    /// Serialises creations, so two requests for one name cannot both pass the checks.
    create_lock: Mutex<()>,
}

impl Registry {
    /// Opens the data directory and every ledger in it, creating the default ledger if it is
    /// missing. Blocks; in strict mode it verifies every ledger first.
    ///
    /// # Errors
    ///
    /// [`RegistryError`] naming the ledger and the cause (a missing or readable key file,
    /// corruption, a lock held by another process, ...).
    pub fn open(config: &Config) -> Result<Self, RegistryError> {
        Self::open_with_vfs(config, Arc::new(RealVfs))
    }

    /// [`Registry::open`] with the storage engine writing through `vfs` (the fault-injecting
    /// file system of the reliability tests; [`RealVfs`] otherwise).
    ///
    /// # Errors
    ///
    /// As [`Registry::open`].
    pub fn open_with_vfs(config: &Config, vfs: Arc<dyn Vfs>) -> Result<Self, RegistryError> {
        let root = config.data_dir.clone();
        let data_dir = DataDir::open_with(&root, vfs).map_err(|source| RegistryError::DataDir {
            path: root.clone(),
            source,
        })?;
        let registry = Self {
            data_dir,
            root,
            // The policy layer finds its bundles, decisions, overrides and exceptions
            // through the terms its extractor adds to every ledger's index.
            options: LedgerOptions {
                extractor: Arc::new(vouch_query::GovernanceTerms),
                ..config.ledger_options()
            },
            defaults: Defaults {
                hash: config.default_hash.into(),
                origin_prefix: config.origin_prefix.clone(),
                leaf_hash_index: config.storage.leaf_hash_index,
            },
            default_ledger: config.default_ledger.clone(),
            ledgers: RwLock::new(BTreeMap::new()),
            create_lock: Mutex::new(()),
        };
        let names = registry
            .data_dir
            .ledger_names()
            .map_err(|source| RegistryError::DataDir {
                path: registry.root.clone(),
                source,
            })?;
        for name in names {
            let signer =
                keys::load(&registry.root, &name).map_err(|source| RegistryError::Key {
                    ledger: name.clone(),
                    source,
                })?;
            tracing::info!(ledger = %name, strict = registry.options.strict, "opening ledger");
            let ledger = registry
                .data_dir
                .open_ledger(&name, signer, registry.options.clone())
                .map_err(|source| RegistryError::Open {
                    ledger: name.clone(),
                    source,
                })?;
            registry.insert(name, ledger);
        }
        if registry.get(&registry.default_ledger).is_err() {
            let name = registry.default_ledger.clone();
            tracing::info!(ledger = %name, "creating the default ledger");
            registry
                .create(&name, None, None, None)
                .map_err(|source| RegistryError::Create {
                    ledger: name.clone(),
                    source,
                })?;
        }
        Ok(registry)
    }

    fn insert(&self, name: String, ledger: Ledger) -> Arc<Ledger> {
        let ledger = Arc::new(ledger);
        self.ledgers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name, ledger.clone());
        ledger
    }

    /// The data directory's path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The name of the ledger that requests naming none go to.
    pub fn default_ledger(&self) -> &str {
        &self.default_ledger
    }

    /// The ledger `name`; the empty name is the default ledger.
    ///
    /// # Errors
    ///
    /// [`LookupError`] for an invalid or unknown name.
    pub fn get(&self, name: &str) -> Result<Arc<Ledger>, LookupError> {
        let name = if name.is_empty() {
            self.default_ledger.as_str()
        } else {
            name
        };
        if !valid_ledger_name(name) {
            return Err(LookupError::InvalidName(name.to_owned()));
        }
        self.ledgers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned()
            .ok_or_else(|| LookupError::NotFound(name.to_owned()))
    }

    /// Every open ledger, by name.
    pub fn list(&self) -> Vec<Arc<Ledger>> {
        self.ledgers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Creates a ledger with a new signing key and opens it. `None` takes the server's
    /// default for the hash, the origin (`<origin prefix>/<name>`) and the leaf-hash index.
    /// Blocks on disk.
    ///
    /// # Errors
    ///
    /// [`CreateError`] for a bad name or origin, an existing ledger, or a storage failure.
    pub fn create(
        &self,
        name: &str,
        hash: Option<HashAlg>,
        origin: Option<String>,
        leaf_hash_index: Option<bool>,
    ) -> Result<Arc<Ledger>, CreateError> {
        if !valid_ledger_name(name) {
            return Err(CreateError::InvalidName(name.to_owned()));
        }
        let origin = origin.unwrap_or_else(|| format!("{}/{name}", self.defaults.origin_prefix));
        if !vouch_ledger_core::note::is_valid_key_name(&origin) {
            return Err(CreateError::InvalidOrigin(origin));
        }
        let _guard = self
            .create_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.data_dir.has_ledger(name) {
            return Err(CreateError::AlreadyExists(name.to_owned()));
        }
        let signer = keys::generate(&origin)?;
        // The key is durable before the ledger exists: a crash in between leaves an unused
        // key file, which the next creation of that name replaces, never a keyless ledger.
        keys::write(&self.root, name, &signer)?;
        let config = LedgerConfig {
            hash: hash.unwrap_or(self.defaults.hash),
            origin,
            leaf_hash_index: leaf_hash_index.unwrap_or(self.defaults.leaf_hash_index),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        self.data_dir
            .create_ledger(name, &config, &signer.verifier(), now)
            .map_err(|e| match e {
                OpenError::AlreadyExists(n) => CreateError::AlreadyExists(n),
                OpenError::InvalidName(n) => CreateError::InvalidName(n),
                other => CreateError::Storage(other),
            })?;
        let ledger = self
            .data_dir
            .open_ledger(name, signer, self.options.clone())?;
        tracing::info!(ledger = %name, hash = %config.hash, origin = %config.origin, "created ledger");
        Ok(self.insert(name.to_owned(), ledger))
    }

    /// Closes every ledger: each finishes the appends already submitted, signs a final
    /// checkpoint, writes its index head and syncs. Appends after this fail as closed; reads
    /// still work. Blocks.
    pub fn close_all(&self) {
        for ledger in self.list() {
            ledger.close();
            tracing::info!(ledger = %ledger.name(), size = ledger.size().0, "closed ledger");
        }
    }
}
