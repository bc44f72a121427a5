//! `checkpoints.dat`: the ledger's signed checkpoints, append-only, apart from the entries.
//!
//! A 32-byte header (magic `VOUCHCKP`) and one frame per checkpoint whose body is a C2SP
//! signed note over a C2SP tlog-checkpoint. Sizes strictly increase. The file is synced after
//! every frame; an incomplete last frame (a crash while writing it) is truncated on open.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use vouch_ledger_core::checkpoint::Checkpoint;
use vouch_ledger_core::{HashAlg, TreeSize};

use crate::error::{Corruption, IoFailure, OpenError, ReadError};
use crate::frame::{CHECKPOINTS_MAGIC, FILE_HEADER_LEN, FileHeader, HeaderError, encode_frame};
use crate::segment::{ScanStop, Scanner};
use crate::vfs::{OpenMode, Vfs, VfsFile};

/// Name of the checkpoint file.
pub(crate) const CHECKPOINTS_FILE: &str = "checkpoints.dat";

/// The largest checkpoint note the engine writes or reads.
pub(crate) const MAX_NOTE_LEN: usize = 64 * 1024;

/// A checkpoint as stored: the parsed checkpoint and the exact signed note bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// The checkpoint body (origin, size, root, extensions).
    pub checkpoint: Checkpoint,
    /// The signed note, byte for byte as stored and served.
    pub note: Arc<[u8]>,
}

impl StoredCheckpoint {
    /// The tree size the checkpoint commits to.
    pub fn size(&self) -> TreeSize {
        self.checkpoint.size
    }
}

/// The text of a signed note: everything up to and including the newline before the blank
/// line that starts the signatures.
pub(crate) fn note_text(note: &[u8]) -> Option<&str> {
    let split = note.windows(2).rposition(|w| w == b"\n\n")?;
    std::str::from_utf8(note.get(..=split)?).ok()
}

/// Whether the file holds only zeros from `offset` to its end `len`, no more than one frame.
fn zeros_to_end(
    file: &dyn VfsFile,
    display: &Path,
    offset: u64,
    len: u64,
) -> Result<bool, IoFailure> {
    let rest = len.saturating_sub(offset);
    if rest > (MAX_NOTE_LEN + 8) as u64 {
        return Ok(false);
    }
    let mut buf = vec![0u8; usize::try_from(rest).unwrap_or(0)];
    file.read_exact_at(&mut buf, offset)
        .map_err(|e| IoFailure::new(display, "read", e))?;
    Ok(buf.iter().all(|b| *b == 0))
}

fn parse_note(note: &[u8]) -> Result<Checkpoint, String> {
    let text = note_text(note).ok_or("not a signed note: no blank line before signatures")?;
    Checkpoint::parse(text).map_err(|e| e.to_string())
}

#[derive(Debug, Default)]
struct LogState {
    /// (tree size, frame offset) of every checkpoint, in order.
    index: Vec<(u64, u64)>,
    /// Where the next frame goes.
    end: u64,
    latest: Option<Arc<StoredCheckpoint>>,
}

/// Why [`CheckpointLog::append`] failed.
#[derive(Debug)]
pub(crate) enum CheckpointWriteError {
    /// The write failed and the file is as it was before.
    RolledBack(IoFailure),
    /// The file may hold a partial frame, or its synced state is unknown.
    Fatal(IoFailure),
}

/// The checkpoint file of one ledger.
#[derive(Debug)]
pub(crate) struct CheckpointLog {
    display: PathBuf,
    file: Arc<dyn VfsFile>,
    state: RwLock<LogState>,
}

impl CheckpointLog {
    /// Opens the file (creating it in write mode), scans it, and truncates a torn last frame
    /// in write mode. Returns a note on what was truncated, for the log.
    pub(crate) fn open(
        vfs: &dyn Vfs,
        dir: &Path,
        display_dir: &Path,
        hash: HashAlg,
        mode: OpenMode,
    ) -> Result<(Self, Option<String>), OpenError> {
        let path = dir.join(CHECKPOINTS_FILE);
        let display = display_dir.join(CHECKPOINTS_FILE);
        let writable = mode != OpenMode::Read;
        if !vfs.exists(&path) && writable {
            // Created whole (temporary file, fsync, rename, directory fsync): a crash must not
            // leave a checkpoint file without its header, which would read as corruption.
            let header = FileHeader {
                magic: CHECKPOINTS_MAGIC,
                hash,
                byte11: 0,
                word: 0,
            };
            crate::meta::write_atomic(vfs, &path, &header.encode())?;
        }
        let file = vfs
            .open(
                &path,
                if writable {
                    OpenMode::ReadWrite
                } else {
                    OpenMode::Read
                },
            )
            .map_err(|e| IoFailure::new(&display, "open", e))?;
        let len = file
            .len()
            .map_err(|e| IoFailure::new(&display, "stat", e))?;
        let mut hdr = [0u8; FILE_HEADER_LEN];
        file.read_exact_at(&mut hdr, 0).map_err(|_| {
            OpenError::Corrupted(Corruption::at(&display, 0, "file shorter than its header"))
        })?;
        match FileHeader::decode(&hdr, CHECKPOINTS_MAGIC) {
            Ok(h) if h.hash == hash => {}
            Ok(h) => {
                return Err(OpenError::Corrupted(Corruption::at(
                    &display,
                    10,
                    format!(
                        "hash function {} does not match the ledger's {hash}",
                        h.hash
                    ),
                )));
            }
            Err(HeaderError::Version(v)) => {
                return Err(OpenError::UnsupportedFormat {
                    file: display,
                    found: u64::from(v),
                    supported: u64::from(crate::frame::FORMAT_VERSION),
                });
            }
            Err(e) => {
                return Err(OpenError::Corrupted(Corruption::at(
                    &display,
                    0,
                    e.to_string(),
                )));
            }
        }
        let mut state = LogState {
            end: FILE_HEADER_LEN as u64,
            ..LogState::default()
        };
        let mut truncated = None;
        let mut last: Option<(u64, Vec<u8>, Checkpoint)> = None;
        {
            let mut scanner = Scanner::over(&*file, &display, FILE_HEADER_LEN as u64, len);
            loop {
                match scanner.next_frame() {
                    Ok(None) => break,
                    Ok(Some((offset, body))) => {
                        let cp = parse_note(body).map_err(|reason| {
                            OpenError::Corrupted(Corruption::at(&display, offset, reason))
                        })?;
                        if let Some(&(prev, _)) = state.index.last()
                            && cp.size.0 <= prev
                        {
                            return Err(OpenError::Corrupted(Corruption::at(
                                &display,
                                offset,
                                format!(
                                    "checkpoint of size {} follows one of size {prev}: sizes must increase",
                                    cp.size
                                ),
                            )));
                        }
                        state.index.push((cp.size.0, offset));
                        last = Some((offset, body.to_vec(), cp));
                        state.end = scanner.position();
                    }
                    Err(ScanStop::Io(e)) => return Err(OpenError::Io(e)),
                    Err(ScanStop::Bad { offset, reason }) => {
                        // Only an incomplete last frame is a torn tail, or zeros from the bad
                        // frame to the end (a crash kept the size the last write gave the file
                        // but not its bytes); a frame with a bad checksum is corruption.
                        let incomplete = reason.starts_with("incomplete")
                            || zeros_to_end(&*file, &display, offset, len)
                                .map_err(OpenError::Io)?;
                        if !incomplete {
                            return Err(OpenError::Corrupted(Corruption::at(
                                &display, offset, reason,
                            )));
                        }
                        truncated = Some(format!(
                            "{}: dropped an incomplete last checkpoint frame at byte {offset} ({} bytes)",
                            display.display(),
                            len - offset
                        ));
                        break;
                    }
                }
            }
        }
        if truncated.is_some() && writable {
            file.set_len(state.end)
                .map_err(|e| IoFailure::new(&display, "truncate", e))?;
            file.sync_data()
                .map_err(|e| IoFailure::new(&display, "fsync", e))?;
        }
        state.latest = last.map(|(_, note, checkpoint)| {
            Arc::new(StoredCheckpoint {
                checkpoint,
                note: note.into(),
            })
        });
        Ok((
            Self {
                display,
                file,
                state: RwLock::new(state),
            },
            truncated,
        ))
    }

    fn state(&self) -> std::sync::RwLockReadGuard<'_, LogState> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The path, for messages.
    pub(crate) fn display(&self) -> &Path {
        &self.display
    }

    /// The newest checkpoint.
    pub(crate) fn latest(&self) -> Option<Arc<StoredCheckpoint>> {
        self.state().latest.clone()
    }

    /// The number of stored checkpoints.
    pub(crate) fn len(&self) -> usize {
        self.state().index.len()
    }

    /// The sizes and offsets of all checkpoints, in order.
    pub(crate) fn entries(&self) -> Vec<(u64, u64)> {
        self.state().index.clone()
    }

    /// The checkpoint of exactly `size`, if one was made.
    pub(crate) fn at_size(&self, size: TreeSize) -> Result<Option<StoredCheckpoint>, ReadError> {
        let offset = {
            let st = self.state();
            // Proofs at the latest checkpoint's size ask for it on every call: answer from
            // memory instead of reading and parsing the note again.
            if let Some(latest) = &st.latest
                && latest.checkpoint.size == size
            {
                return Ok(Some(StoredCheckpoint::clone(latest)));
            }
            match st.index.binary_search_by_key(&size.0, |&(s, _)| s) {
                Ok(i) => st.index[i].1,
                Err(_) => return Ok(None),
            }
        };
        self.read_at(offset).map(Some)
    }

    /// The first checkpoint whose size is at least `size`.
    pub(crate) fn first_at_least(
        &self,
        size: TreeSize,
    ) -> Result<Option<StoredCheckpoint>, ReadError> {
        let offset = {
            let st = self.state();
            let i = st.index.partition_point(|&(s, _)| s < size.0);
            match st.index.get(i) {
                Some(&(_, off)) => off,
                None => return Ok(None),
            }
        };
        self.read_at(offset).map(Some)
    }

    /// Reads and parses the checkpoint frame at `offset`.
    pub(crate) fn read_at(&self, offset: u64) -> Result<StoredCheckpoint, ReadError> {
        let mut hdr = [0u8; 8];
        self.file
            .read_exact_at(&mut hdr, offset)
            .map_err(|e| IoFailure::new(&self.display, "read", e))?;
        let header = crate::frame::FrameHeader::parse(hdr);
        if header.len as usize > MAX_NOTE_LEN {
            return Err(ReadError::Corrupted(Corruption::at(
                &self.display,
                offset,
                "checkpoint frame too long",
            )));
        }
        let mut body = vec![0u8; header.len as usize];
        self.file
            .read_exact_at(&mut body, offset + 8)
            .map_err(|e| IoFailure::new(&self.display, "read", e))?;
        if !header.check(&body) {
            return Err(ReadError::Corrupted(Corruption::at(
                &self.display,
                offset,
                "checkpoint frame checksum mismatch",
            )));
        }
        let checkpoint = parse_note(&body)
            .map_err(|r| ReadError::Corrupted(Corruption::at(&self.display, offset, r)))?;
        Ok(StoredCheckpoint {
            checkpoint,
            note: body.into(),
        })
    }

    /// Appends a checkpoint frame and syncs the file. Only the writer calls this.
    ///
    /// A failed write (a full disk) is rolled back, and the file takes the next checkpoint as
    /// if it had not happened; a failed sync, or a write that cannot be rolled back, is fatal.
    pub(crate) fn append(
        &self,
        checkpoint: Checkpoint,
        note: Vec<u8>,
    ) -> Result<Arc<StoredCheckpoint>, CheckpointWriteError> {
        let mut frame = Vec::with_capacity(note.len() + 8);
        encode_frame(&note, &mut frame);
        let end = self.state().end;
        if let Err(e) = self.file.write_all_at(&frame, end) {
            // Leave no partial frame behind, so the file can take the next checkpoint.
            let failure = IoFailure::new(&self.display, "write", e);
            return Err(match self.file.set_len(end) {
                Ok(()) => CheckpointWriteError::RolledBack(failure),
                Err(_) => CheckpointWriteError::Fatal(failure),
            });
        }
        self.file
            .sync_data()
            .map_err(|e| CheckpointWriteError::Fatal(IoFailure::new(&self.display, "fsync", e)))?;
        let stored = Arc::new(StoredCheckpoint {
            checkpoint,
            note: note.into(),
        });
        let mut st = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        st.index.push((stored.checkpoint.size.0, end));
        st.end = end + frame.len() as u64;
        st.latest = Some(stored.clone());
        Ok(stored)
    }
}
