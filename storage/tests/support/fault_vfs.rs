//! A fault-injecting, crash-simulating [`Vfs`] for the storage engine's reliability tests.
//!
//! [`FaultVfs`] performs every operation on the real file system below one root directory, and
//! at the same time keeps a model of what a power failure at that moment would leave on disk.
//!
//! # Counting and faults
//!
//! Every mutating operation gets the next sequence number, starting at 1: creating a file
//! (`open` with [`OpenMode::CreateNew`]), `create_dir_all`, `write_all_at`, `sync_data`,
//! `set_len`, `allocate`, `rename`, `remove_file`, `remove_dir_all` and `sync_dir`. Reads
//! (`open` of an existing file, `read_exact_at`, `len`, `read_dir`, `exists`, memory maps) are
//! not counted. [`FaultVfs::trace`] lists the counted operations with their paths.
//!
//! A single operation can be made to fail, by number ([`FaultVfs::fail_at`]) or as the next
//! operation of a kind on a path ending with a given suffix ([`FaultVfs::fail_next`]), with
//! `EIO`, `ENOSPC`, or a short write (the first half of the buffer is written, then `ENOSPC`).
//! A failed operation changes nothing else (a short write leaves its half, as a real one
//! would). Operations after it run normally.
//!
//! # A full disk
//!
//! [`FaultVfs::set_free_space`] models a disk with that many bytes left: every write or
//! `allocate` that makes a file longer uses up the bytes it adds (writes within a file's
//! length, such as into space reserved ahead, use none; `set_len` makes sparse files and uses
//! none; nothing is given back when a file shrinks). A write that does not fit stores the part
//! that fits and fails with `ENOSPC`, as `write(2)` does on a full disk; an `allocate` that
//! does not fit fails whole. `set_free_space(None)` frees the disk again. Files written
//! without the [`Vfs`] (the `sled` directories) are not counted.
//!
//! [`FaultVfs::crash_at`] simulates a crash at operation `N`: operation `N` and every operation
//! after it, counted or not, fail with `EIO` and change nothing, so the process that holds the
//! ledger can no longer reach the disk. (`exists` keeps answering, and memory maps made before
//! keep reading the real files: neither writes.)
//!
//! # The durable state
//!
//! Files are modelled as inodes (the real file's device and inode number map to a model node,
//! so renames keep their identity). Each node holds:
//!
//! - its **durable bytes**: the contents as of its last completed `sync_data` (for a file that
//!   existed when the [`FaultVfs`] was made, its contents then; for a created file, empty);
//! - the **pending** operations since then, in order: writes (offset and bytes), `set_len`,
//!   and `allocate` (which extends the file with zeros and reserves nothing).
//!
//! `sync_data` makes the node's pending operations durable (it applies them to the durable
//! bytes). The real `fsync` is skipped unless [`FaultVfs::set_real_sync`] asks for it: the
//! model, not the disk, decides what survives.
//!
//! Directory entries are modelled the same way. The **durable namespace** maps paths (relative
//! to the root) to nodes and directories; each directory has a list of pending name
//! operations since its last `sync_dir`: entries added (file created, directory created),
//! removed (`remove_file`, `remove_dir_all`, which removes the whole subtree) and renamed
//! (`rename`, which must stay within one directory; renaming a directory moves its subtree).
//! `sync_dir` applies that directory's pending list to the durable namespace.
//!
//! After a crash, [`FaultVfs::materialize`] builds a directory holding one possible durable
//! state, chosen by a [`Survival`]:
//!
//! - for every directory, a prefix of its pending name operations survives (all the
//!   directories' surviving operations are applied in their global order);
//! - for every file, its durable bytes plus a prefix of its pending operations, applied in
//!   order; with [`Survival::Random`] the first write after that prefix may also survive in
//!   part (a torn write: a prefix of its bytes);
//! - a path survives only if every directory above it survives.
//!
//! [`Survival::Synced`] keeps no pending operation (only what was synced survives),
//! [`Survival::All`] keeps all of them (a process crash: the page cache survives), and
//! [`Survival::Random`] chooses per file and per directory, from a seed. [`Survival::Pages`]
//! models a file system that keeps a file's size but not necessarily its data: every pending
//! write of a file survives or not on its own (`set_len` and `allocate` always do), and a lost
//! write that had extended the file leaves zeros in its place; directories are chosen as with
//! [`Survival::Random`].
//!
//! Files the engine does not write through the [`Vfs`] are **untracked**: anything below a
//! directory named `sled` (the secondary index writes its own files) and the `LOCK` files (an
//! advisory lock, opened directly). The engine announces each batch it writes to the secondary index
//! ([`Vfs::before_index_write`]), and that is counted as an [`OpKind::IndexWrite`] operation,
//! which an injected fault or a full disk fails, so a failing sled can be modelled too. [`FaultVfs::materialize`] copies the `sled` directories from
//! the live tree if asked (they are derived data that the engine must accept or rebuild), and
//! never copies `LOCK` files.

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use vouch_storage::vfs::{OpenMode, Vfs, VfsFile};

use super::Rng;

/// `EIO` on Linux.
const EIO: i32 = 5;
/// `ENOSPC` on Linux.
const ENOSPC: i32 = 28;

/// The kinds of counted operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// `open` with [`OpenMode::CreateNew`].
    Create,
    /// `create_dir_all`.
    CreateDir,
    /// `write_all_at`.
    Write,
    /// `sync_data`.
    Sync,
    /// `set_len`.
    SetLen,
    /// `allocate`.
    Allocate,
    /// `rename`.
    Rename,
    /// `remove_file`.
    Remove,
    /// `remove_dir_all`.
    RemoveDir,
    /// `sync_dir`.
    SyncDir,
    /// A batch written to the secondary index (`Vfs::before_index_write`). sled writes its
    /// own files, so the operation writes nothing here; it fails when a fault is injected or
    /// the disk is full.
    IndexWrite,
}

/// One counted operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpRecord {
    /// Its sequence number, from 1.
    pub seq: u64,
    /// What it was.
    pub kind: OpKind,
    /// The path it applied to, relative to the root.
    pub path: PathBuf,
}

impl fmt::Display for OpRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} {:?} {}", self.seq, self.kind, self.path.display())
    }
}

/// How an injected fault fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `EIO`: an I/O error.
    Eio,
    /// `ENOSPC`: no space left on device.
    Enospc,
    /// A write stores the first half of its buffer, then fails with `ENOSPC`. On any other
    /// operation this is plain `ENOSPC`.
    ShortWrite,
}

/// Which durable state [`FaultVfs::materialize`] builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Survival {
    /// Only what was synced survives.
    Synced,
    /// Everything that was done survives (a process crash).
    All,
    /// For each file and directory, a random prefix of its pending operations survives, the
    /// next write perhaps torn; the seed makes the choice reproducible.
    Random(u64),
    /// Each pending write survives or not on its own, and the file keeps the size the writes
    /// gave it, so a lost write that extended the file leaves zeros (a file system that keeps
    /// the size but not the data, as XFS can). Directories as [`Survival::Random`].
    Pages(u64),
}

#[derive(Debug, Clone)]
enum Trigger {
    At(u64),
    Next(OpKind, String),
}

#[derive(Debug, Clone)]
enum Pending {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
    Allocate(u64),
}

impl Pending {
    /// Applies the operation to `content`; a write is cut to its first `cut` bytes if given.
    fn apply(&self, content: &mut Vec<u8>, cut: Option<usize>) {
        match self {
            Pending::Write { offset, data } => {
                let data = &data[..cut.unwrap_or(data.len()).min(data.len())];
                let start = usize::try_from(*offset).expect("test files are small");
                let end = start + data.len();
                if content.len() < end {
                    content.resize(end, 0);
                }
                content[start..end].copy_from_slice(data);
            }
            Pending::SetLen(len) => {
                content.resize(usize::try_from(*len).expect("test files are small"), 0);
            }
            Pending::Allocate(len) => {
                let len = usize::try_from(*len).expect("test files are small");
                if content.len() < len {
                    content.resize(len, 0);
                }
            }
        }
    }
}

#[derive(Debug, Default)]
struct Node {
    durable: Vec<u8>,
    pending: Vec<Pending>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ent {
    File(usize),
    Dir,
}

#[derive(Debug, Clone)]
enum NameOp {
    Add(PathBuf, Ent),
    Remove(PathBuf),
    Rename(PathBuf, PathBuf),
}

impl NameOp {
    fn apply(&self, map: &mut BTreeMap<PathBuf, Ent>) {
        match self {
            NameOp::Add(p, e) => {
                map.insert(p.clone(), *e);
            }
            NameOp::Remove(p) => remove_subtree(map, p),
            NameOp::Rename(from, to) => {
                let moved: Vec<(PathBuf, Ent)> = map
                    .iter()
                    .filter(|(k, _)| k.starts_with(from))
                    .map(|(k, v)| (k.clone(), *v))
                    .collect();
                remove_subtree(map, from);
                if !moved.is_empty() {
                    remove_subtree(map, to);
                }
                for (k, v) in moved {
                    let rest = k.strip_prefix(from).expect("filtered on the prefix");
                    let moved_to = if rest.as_os_str().is_empty() {
                        to.clone()
                    } else {
                        to.join(rest)
                    };
                    map.insert(moved_to, v);
                }
            }
        }
    }
}

fn remove_subtree(map: &mut BTreeMap<PathBuf, Ent>, p: &Path) {
    map.retain(|k, _| !k.starts_with(p));
}

/// Whether the engine writes this path without the [`Vfs`].
fn untracked(rel: &Path) -> bool {
    rel.components().any(|c| c.as_os_str() == "sled")
        || rel.file_name().is_some_and(|n| n == "LOCK")
}

#[derive(Debug)]
struct State {
    root: PathBuf,
    seq: u64,
    crash_at: Option<u64>,
    crashed: bool,
    real_sync: bool,
    /// Bytes the modelled disk has left; `None` for no limit.
    free_space: Option<u64>,
    faults: Vec<(Trigger, Fault)>,
    trace: Vec<OpRecord>,
    nodes: Vec<Node>,
    by_ino: HashMap<(u64, u64), usize>,
    durable: BTreeMap<PathBuf, Ent>,
    /// Pending name operations of each directory, with their sequence numbers.
    pending_dirs: BTreeMap<PathBuf, Vec<(u64, NameOp)>>,
}

enum Verdict {
    Go,
    Fail(io::Error),
    Short(io::Error),
}

fn dead() -> io::Error {
    io::Error::from_raw_os_error(EIO)
}

impl State {
    fn rel(&self, path: &Path) -> PathBuf {
        path.strip_prefix(&self.root)
            .unwrap_or_else(|_| {
                panic!(
                    "{} is outside the fault VFS root {}",
                    path.display(),
                    self.root.display()
                )
            })
            .to_path_buf()
    }

    fn alive(&self) -> io::Result<()> {
        if self.crashed { Err(dead()) } else { Ok(()) }
    }

    /// Counts an operation and decides its fate.
    fn begin(&mut self, kind: OpKind, rel: &Path) -> Verdict {
        self.seq += 1;
        let seq = self.seq;
        self.trace.push(OpRecord {
            seq,
            kind,
            path: rel.to_path_buf(),
        });
        if self.crash_at.is_some_and(|c| seq >= c) {
            self.crashed = true;
        }
        if self.crashed {
            return Verdict::Fail(dead());
        }
        let rel_str = rel.to_string_lossy();
        let hit = self.faults.iter().position(|(t, _)| match t {
            Trigger::At(n) => *n == seq,
            Trigger::Next(k, suffix) => *k == kind && rel_str.ends_with(suffix.as_str()),
        });
        let Some(i) = hit else { return Verdict::Go };
        let (_, fault) = self.faults.remove(i);
        match fault {
            Fault::Eio => Verdict::Fail(io::Error::from_raw_os_error(EIO)),
            Fault::ShortWrite if kind == OpKind::Write => {
                Verdict::Short(io::Error::from_raw_os_error(ENOSPC))
            }
            Fault::Enospc | Fault::ShortWrite => {
                Verdict::Fail(io::Error::from_raw_os_error(ENOSPC))
            }
        }
    }

    /// Takes the space a file of length `len` needs to grow to `end`. `None` if it fits (or
    /// the disk is not limited); otherwise the disk is now full and the answer is the length
    /// the file may reach.
    fn take_space(&mut self, len: u64, end: u64) -> Option<u64> {
        let growth = end.saturating_sub(len);
        match self.free_space {
            None => None,
            Some(free) if growth <= free => {
                self.free_space = Some(free - growth);
                None
            }
            Some(free) => {
                self.free_space = Some(0);
                Some(len + free)
            }
        }
    }

    fn node_of(&mut self, meta: &fs::Metadata, path: &Path) -> usize {
        let key = (meta.dev(), meta.ino());
        if let Some(&n) = self.by_ino.get(&key) {
            return n;
        }
        // A file the model has not seen: it was there before, so it counts as durable.
        let durable = fs::read(path).unwrap_or_default();
        self.nodes.push(Node {
            durable,
            pending: Vec::new(),
        });
        let n = self.nodes.len() - 1;
        self.by_ino.insert(key, n);
        n
    }

    fn forget_inodes_below(&mut self, path: &Path) {
        let mut stack = vec![path.to_path_buf()];
        while let Some(p) = stack.pop() {
            let Ok(meta) = fs::symlink_metadata(&p) else {
                continue;
            };
            self.by_ino.remove(&(meta.dev(), meta.ino()));
            if meta.is_dir()
                && let Ok(rd) = fs::read_dir(&p)
            {
                stack.extend(rd.filter_map(Result::ok).map(|e| e.path()));
            }
        }
    }

    fn push_name_op(&mut self, dir: PathBuf, op: NameOp) {
        let seq = self.seq;
        self.pending_dirs.entry(dir).or_default().push((seq, op));
    }
}

fn parent_of(rel: &Path) -> PathBuf {
    rel.parent().map(Path::to_path_buf).unwrap_or_default()
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The fault-injecting file system. Cheap to clone; clones share one model.
#[derive(Debug, Clone)]
pub struct FaultVfs {
    shared: Arc<Shared>,
}

impl FaultVfs {
    /// A file system over `root`, whose current contents count as durable.
    ///
    /// # Panics
    ///
    /// If `root` cannot be read.
    pub fn new(root: &Path) -> Self {
        let mut state = State {
            root: root.to_path_buf(),
            seq: 0,
            crash_at: None,
            crashed: false,
            real_sync: false,
            free_space: None,
            faults: Vec::new(),
            trace: Vec::new(),
            nodes: Vec::new(),
            by_ino: HashMap::new(),
            durable: BTreeMap::new(),
            pending_dirs: BTreeMap::new(),
        };
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).expect("the root is readable") {
                let path = entry.expect("the root is readable").path();
                let rel = state.rel(&path);
                if untracked(&rel) {
                    continue;
                }
                let meta = fs::symlink_metadata(&path).expect("the root is readable");
                if meta.is_dir() {
                    state.durable.insert(rel, Ent::Dir);
                    stack.push(path);
                } else {
                    let n = state.node_of(&meta, &path);
                    state.durable.insert(rel, Ent::File(n));
                }
            }
        }
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
            }),
        }
    }

    /// This file system as the engine takes it.
    pub fn as_vfs(&self) -> Arc<dyn Vfs> {
        Arc::new(self.clone())
    }

    /// Whether `sync_data` and `sync_dir` also sync the real files (off by default: the model
    /// decides what is durable, and real syncs only cost time).
    pub fn set_real_sync(&self, on: bool) {
        self.shared.lock().real_sync = on;
    }

    /// How many counted operations were made.
    pub fn op_count(&self) -> u64 {
        self.shared.lock().seq
    }

    /// The counted operations so far.
    pub fn trace(&self) -> Vec<OpRecord> {
        self.shared.lock().trace.clone()
    }

    /// Makes operation `seq` fail.
    pub fn fail_at(&self, seq: u64, fault: Fault) {
        self.shared.lock().faults.push((Trigger::At(seq), fault));
    }

    /// Makes the next operation of `kind` on a path ending with `suffix` fail.
    pub fn fail_next(&self, kind: OpKind, suffix: &str, fault: Fault) {
        self.shared
            .lock()
            .faults
            .push((Trigger::Next(kind, suffix.to_owned()), fault));
    }

    /// Whether an armed fault is still waiting for its operation.
    pub fn fault_pending(&self) -> bool {
        !self.shared.lock().faults.is_empty()
    }

    /// Crashes at operation `seq`: it and everything after it fail.
    pub fn crash_at(&self, seq: u64) {
        self.shared.lock().crash_at = Some(seq);
    }

    /// Whether the crash happened.
    pub fn crashed(&self) -> bool {
        self.shared.lock().crashed
    }

    /// Models a disk with `bytes` left from now on (see the module documentation); `None`
    /// removes the limit, as when an operator frees space.
    pub fn set_free_space(&self, bytes: Option<u64>) {
        self.shared.lock().free_space = bytes;
    }

    /// The bytes the modelled disk has left, if it is limited.
    pub fn free_space(&self) -> Option<u64> {
        self.shared.lock().free_space
    }

    /// Writes one possible durable state into `dest` (which must not exist yet), and copies the
    /// untracked `sled` directories from the live tree if `copy_sled`. Call it after the
    /// ledger that used this file system was dropped.
    ///
    /// Returns a description of the choices made, for failure messages.
    ///
    /// # Errors
    ///
    /// I/O errors writing `dest` or reading the live `sled` directories.
    pub fn materialize(
        &self,
        dest: &Path,
        survival: Survival,
        copy_sled: bool,
    ) -> io::Result<String> {
        let st = self.shared.lock();
        let mut rng = Rng::new(match survival {
            Survival::Random(seed) | Survival::Pages(seed) => seed,
            _ => 0,
        });
        let mut notes = Vec::new();
        // Keep `k` of `m` pending operations.
        let choose = |m: usize, rng: &mut Rng| match survival {
            Survival::Synced => 0,
            Survival::All => m,
            Survival::Random(_) | Survival::Pages(_) => match rng.below(3) {
                0 => 0,
                1 => m,
                _ => usize::try_from(rng.below(m as u64 + 1)).expect("small"),
            },
        };

        let mut surviving: Vec<(u64, NameOp)> = Vec::new();
        for (dir, ops) in &st.pending_dirs {
            let k = choose(ops.len(), &mut rng);
            if k != ops.len() {
                notes.push(format!(
                    "directory {}: {k} of {} name operations survive",
                    dir.display(),
                    ops.len()
                ));
            }
            surviving.extend(ops[..k].iter().cloned());
        }
        surviving.sort_by_key(|(seq, _)| *seq);
        let mut map = st.durable.clone();
        for (_, op) in &surviving {
            op.apply(&mut map);
        }

        let mut contents: HashMap<usize, Vec<u8>> = HashMap::new();
        fs::create_dir_all(dest)?;
        for (rel, ent) in &map {
            let parents_exist = rel
                .ancestors()
                .skip(1)
                .filter(|a| !a.as_os_str().is_empty())
                .all(|a| map.get(a) == Some(&Ent::Dir));
            if !parents_exist {
                continue;
            }
            let target = dest.join(rel);
            match ent {
                Ent::Dir => fs::create_dir_all(&target)?,
                Ent::File(n) => {
                    if let (Survival::Pages(_), false) = (survival, contents.contains_key(n)) {
                        let node = &st.nodes[*n];
                        let mut bytes = node.durable.clone();
                        let mut lost = 0;
                        for op in &node.pending {
                            match op {
                                Pending::Write { offset, data } if rng.below(2) == 0 => {
                                    let end = usize::try_from(*offset).expect("small") + data.len();
                                    if bytes.len() < end {
                                        bytes.resize(end, 0);
                                    }
                                    lost += 1;
                                }
                                other => other.apply(&mut bytes, None),
                            }
                        }
                        if lost > 0 {
                            notes.push(format!(
                                "{}: {lost} of {} pending operations lost their data",
                                rel.display(),
                                node.pending.len()
                            ));
                        }
                        contents.insert(*n, bytes);
                    }
                    if !contents.contains_key(n) {
                        let node = &st.nodes[*n];
                        let m = node.pending.len();
                        let k = choose(m, &mut rng);
                        let mut bytes = node.durable.clone();
                        for op in &node.pending[..k] {
                            op.apply(&mut bytes, None);
                        }
                        let mut note = format!("{}: {k} of {m} pending operations", rel.display());
                        if let (Survival::Random(_), Some(next @ Pending::Write { data, .. })) =
                            (survival, node.pending.get(k))
                            && data.len() > 1
                            && rng.below(2) == 0
                        {
                            let cut = 1 + usize::try_from(rng.below(data.len() as u64 - 1))
                                .expect("small");
                            next.apply(&mut bytes, Some(cut));
                            let _ = write!(note, ", then {cut} of {} bytes", data.len());
                        }
                        if k != m {
                            notes.push(note);
                        }
                        contents.insert(*n, bytes);
                    }
                    fs::write(&target, &contents[n]).map_err(|e| {
                        io::Error::new(e.kind(), format!("{}: {e}", target.display()))
                    })?;
                }
            }
        }
        if copy_sled {
            let mut stack = vec![st.root.clone()];
            while let Some(dir) = stack.pop() {
                for entry in fs::read_dir(&dir)? {
                    let path = entry?.path();
                    if !path.is_dir() {
                        continue;
                    }
                    if path.file_name().is_some_and(|n| n == "sled") {
                        wait_for_sled(&path);
                        let rel = path.strip_prefix(&st.root).expect("below the root");
                        let target = dest.join(rel);
                        if target.parent().is_some_and(Path::is_dir) {
                            super::copy_dir(&path, &target)?;
                        }
                    } else {
                        stack.push(path);
                    }
                }
            }
        }
        Ok(notes.join("; "))
    }
}

/// Waits (a few seconds at most) until the sled instance that used `dir` has let go of its
/// files, so that the copy is not taken while it still writes.
fn wait_for_sled(dir: &Path) {
    let Ok(db) = File::open(dir.join("db")) else {
        return;
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while let Err(fs::TryLockError::WouldBlock) = db.try_lock() {
        if std::time::Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// A file opened through a [`FaultVfs`].
#[derive(Debug)]
struct FaultFile {
    file: File,
    node: usize,
    rel: PathBuf,
    shared: Arc<Shared>,
}

impl FaultFile {
    fn record(&self, st: &mut State, op: Pending) {
        st.nodes[self.node].pending.push(op);
    }
}

impl VfsFile for FaultFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.shared.lock().alive()?;
        self.file.read_exact_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut st = self.shared.lock();
        match st.begin(OpKind::Write, &self.rel) {
            Verdict::Go => {
                let len = self.file.metadata()?.len();
                if let Some(limit) = st.take_space(len, offset + buf.len() as u64) {
                    // The disk fills up: the part that fits is written, then ENOSPC.
                    let fits = usize::try_from(limit.saturating_sub(offset))
                        .expect("test files are small")
                        .min(buf.len());
                    if fits > 0 {
                        self.file.write_all_at(&buf[..fits], offset)?;
                        self.record(
                            &mut st,
                            Pending::Write {
                                offset,
                                data: buf[..fits].to_vec(),
                            },
                        );
                    }
                    return Err(io::Error::from_raw_os_error(ENOSPC));
                }
                self.file.write_all_at(buf, offset)?;
                self.record(
                    &mut st,
                    Pending::Write {
                        offset,
                        data: buf.to_vec(),
                    },
                );
                Ok(())
            }
            Verdict::Fail(e) => Err(e),
            Verdict::Short(e) => {
                let half = &buf[..buf.len() / 2];
                self.file.write_all_at(half, offset)?;
                self.record(
                    &mut st,
                    Pending::Write {
                        offset,
                        data: half.to_vec(),
                    },
                );
                Err(e)
            }
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut st = self.shared.lock();
        match st.begin(OpKind::Sync, &self.rel) {
            Verdict::Go => {
                if st.real_sync {
                    self.file.sync_data()?;
                }
                let node = &mut st.nodes[self.node];
                let pending = std::mem::take(&mut node.pending);
                for op in &pending {
                    op.apply(&mut node.durable, None);
                }
                Ok(())
            }
            Verdict::Fail(e) | Verdict::Short(e) => Err(e),
        }
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.shared.lock();
        match st.begin(OpKind::SetLen, &self.rel) {
            Verdict::Go => {
                self.file.set_len(len)?;
                self.record(&mut st, Pending::SetLen(len));
                Ok(())
            }
            Verdict::Fail(e) | Verdict::Short(e) => Err(e),
        }
    }

    fn len(&self) -> io::Result<u64> {
        self.shared.lock().alive()?;
        Ok(self.file.metadata()?.len())
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        let mut st = self.shared.lock();
        match st.begin(OpKind::Allocate, &self.rel) {
            Verdict::Go => {
                let current = self.file.metadata()?.len();
                if current < len && st.free_space.is_some_and(|free| len - current > free) {
                    return Err(io::Error::from_raw_os_error(ENOSPC));
                }
                st.take_space(current, len);
                if current < len {
                    self.file.set_len(len)?;
                }
                self.record(&mut st, Pending::Allocate(len));
                Ok(())
            }
            Verdict::Fail(e) | Verdict::Short(e) => Err(e),
        }
    }

    fn std_file(&self) -> &File {
        &self.file
    }
}

impl Vfs for FaultVfs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn VfsFile>> {
        let mut st = self.shared.lock();
        let rel = st.rel(path);
        let mut opts = OpenOptions::new();
        let file = match mode {
            OpenMode::Read | OpenMode::ReadWrite => {
                st.alive()?;
                opts.read(true).write(mode == OpenMode::ReadWrite);
                opts.open(path)?
            }
            OpenMode::CreateNew => match st.begin(OpKind::Create, &rel) {
                Verdict::Go => {
                    let f = opts.read(true).write(true).create_new(true).open(path)?;
                    let meta = f.metadata()?;
                    st.nodes.push(Node::default());
                    let n = st.nodes.len() - 1;
                    st.by_ino.insert((meta.dev(), meta.ino()), n);
                    st.push_name_op(parent_of(&rel), NameOp::Add(rel.clone(), Ent::File(n)));
                    f
                }
                Verdict::Fail(e) | Verdict::Short(e) => return Err(e),
            },
        };
        let meta = file.metadata()?;
        let node = st.node_of(&meta, path);
        Ok(Arc::new(FaultFile {
            file,
            node,
            rel,
            shared: self.shared.clone(),
        }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut st = self.shared.lock();
        let rel = st.rel(path);
        match st.begin(OpKind::CreateDir, &rel) {
            Verdict::Go => {
                let missing: Vec<PathBuf> = rel
                    .ancestors()
                    .filter(|a| !a.as_os_str().is_empty() && !st.root.join(a).exists())
                    .map(Path::to_path_buf)
                    .collect();
                fs::create_dir_all(path)?;
                for dir in missing.into_iter().rev() {
                    st.push_name_op(parent_of(&dir), NameOp::Add(dir, Ent::Dir));
                }
                Ok(())
            }
            Verdict::Fail(e) | Verdict::Short(e) => Err(e),
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.shared.lock();
        let (rel_from, rel_to) = (st.rel(from), st.rel(to));
        match st.begin(OpKind::Rename, &rel_from) {
            Verdict::Go => {
                assert_eq!(
                    parent_of(&rel_from),
                    parent_of(&rel_to),
                    "the model only knows renames within one directory"
                );
                assert!(
                    !st.pending_dirs
                        .keys()
                        .any(|d| d.starts_with(&rel_from) && !st.pending_dirs[d].is_empty()),
                    "the model cannot rename a directory whose own entries are not synced: {}",
                    rel_from.display()
                );
                if let Ok(meta) = fs::symlink_metadata(to) {
                    if meta.is_dir() {
                        st.forget_inodes_below(to);
                    } else {
                        st.by_ino.remove(&(meta.dev(), meta.ino()));
                    }
                }
                fs::rename(from, to)?;
                st.push_name_op(parent_of(&rel_from), NameOp::Rename(rel_from, rel_to));
                Ok(())
            }
            Verdict::Fail(e) | Verdict::Short(e) => Err(e),
        }
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut st = self.shared.lock();
        let rel = st.rel(path);
        match st.begin(OpKind::Remove, &rel) {
            Verdict::Go => {
                let meta = fs::symlink_metadata(path)?;
                fs::remove_file(path)?;
                st.by_ino.remove(&(meta.dev(), meta.ino()));
                st.push_name_op(parent_of(&rel), NameOp::Remove(rel));
                Ok(())
            }
            Verdict::Fail(e) | Verdict::Short(e) => Err(e),
        }
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut st = self.shared.lock();
        let rel = st.rel(path);
        match st.begin(OpKind::RemoveDir, &rel) {
            Verdict::Go => {
                st.forget_inodes_below(path);
                fs::remove_dir_all(path)?;
                st.push_name_op(parent_of(&rel), NameOp::Remove(rel));
                Ok(())
            }
            Verdict::Fail(e) | Verdict::Short(e) => Err(e),
        }
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.shared.lock();
        let rel = st.rel(path);
        match st.begin(OpKind::SyncDir, &rel) {
            Verdict::Go => {
                if st.real_sync {
                    File::open(path)?.sync_all()?;
                }
                if let Some(ops) = st.pending_dirs.remove(&rel) {
                    for (_, op) in &ops {
                        op.apply(&mut st.durable);
                    }
                }
                Ok(())
            }
            Verdict::Fail(e) | Verdict::Short(e) => Err(e),
        }
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.shared.lock().alive()?;
        let mut names = Vec::new();
        for entry in fs::read_dir(path)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn before_index_write(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.shared.lock();
        let rel = st.rel(dir);
        match st.begin(OpKind::IndexWrite, &rel) {
            Verdict::Go if st.free_space == Some(0) => Err(io::Error::from_raw_os_error(ENOSPC)),
            Verdict::Go => Ok(()),
            Verdict::Fail(e) | Verdict::Short(e) => Err(e),
        }
    }
}
