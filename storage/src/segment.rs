//! Segment files: the log itself.
//!
//! A segment is a 32-byte header (magic `VOUCHSEG`, format version, hash id, first index)
//! followed by checksummed frames, each carrying one entry envelope. Segments are named by
//! their first index; the one with the greatest first index is active, all others are sealed
//! and never written again. See `docs/format.md`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use vouch_ledger_core::HashAlg;
use vouch_ledger_core::entry::MAX_ENVELOPE_LEN;

use crate::error::{Corruption, IoFailure, OpenError, ReadError};
use crate::frame::{
    FILE_HEADER_LEN, FRAME_HEADER_LEN, FileHeader, FrameHeader, HeaderError, SEGMENT_MAGIC,
};
use crate::vfs::{OpenMode, Vfs, VfsFile};

/// The largest frame body a segment may hold: the largest envelope.
pub(crate) const MAX_FRAME_BODY: u64 = MAX_ENVELOPE_LEN as u64;

/// The size of the reads a [`Scanner`] makes.
const SCAN_CHUNK: usize = 1 << 20;

/// One segment file.
#[derive(Debug)]
pub(crate) struct Segment {
    /// The index of the first entry it holds.
    pub(crate) first: u64,
    /// The path relative to the data directory, for messages.
    pub(crate) display: PathBuf,
    pub(crate) file: Arc<dyn VfsFile>,
}

/// The file name of the segment whose first entry is `first`.
pub(crate) fn file_name(first: u64) -> String {
    format!("{first:020}.seg")
}

/// The first index encoded in a segment file name, if it is one.
pub(crate) fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl Segment {
    /// Creates a new segment with its header, synced. The caller syncs the directory.
    pub(crate) fn create(
        vfs: &dyn Vfs,
        dir: &Path,
        display_dir: &Path,
        first: u64,
        hash: HashAlg,
    ) -> Result<Self, IoFailure> {
        let name = file_name(first);
        let path = dir.join(&name);
        let display = display_dir.join(&name);
        let file = vfs
            .open(&path, OpenMode::CreateNew)
            .map_err(|e| IoFailure::new(&display, "create", e))?;
        let header = FileHeader {
            magic: SEGMENT_MAGIC,
            hash,
            byte11: 0,
            word: first,
        };
        file.write_all_at(&header.encode(), 0)
            .map_err(|e| IoFailure::new(&display, "write", e))?;
        file.sync_data()
            .map_err(|e| IoFailure::new(&display, "fsync", e))?;
        Ok(Self {
            first,
            display,
            file,
        })
    }

    /// Opens an existing segment and checks its header.
    ///
    /// A header that is too short or fails its checksum is reported as
    /// [`SegmentOpenError::BadHeader`] so that recovery can tell a torn new active segment
    /// from a corrupt one.
    pub(crate) fn open(
        vfs: &dyn Vfs,
        dir: &Path,
        display_dir: &Path,
        first: u64,
        hash: HashAlg,
        mode: OpenMode,
    ) -> Result<Self, SegmentOpenError> {
        let name = file_name(first);
        let display = display_dir.join(&name);
        let file = vfs
            .open(&dir.join(&name), mode)
            .map_err(|e| SegmentOpenError::Io(IoFailure::new(&display, "open", e)))?;
        let len = file
            .len()
            .map_err(|e| SegmentOpenError::Io(IoFailure::new(&display, "stat", e)))?;
        let mut buf = [0u8; FILE_HEADER_LEN];
        let have = usize::try_from(len.min(FILE_HEADER_LEN as u64)).unwrap_or(0);
        file.read_exact_at(&mut buf[..have], 0)
            .map_err(|e| SegmentOpenError::Io(IoFailure::new(&display, "read", e)))?;
        let header = match FileHeader::decode(&buf[..have], SEGMENT_MAGIC) {
            Ok(h) => h,
            Err(HeaderError::Version(v)) => {
                return Err(SegmentOpenError::Open(OpenError::UnsupportedFormat {
                    file: display,
                    found: u64::from(v),
                    supported: u64::from(crate::frame::FORMAT_VERSION),
                }));
            }
            // Short, a failed checksum, or zeros where a crash kept the size the header write
            // gave the file but not its bytes: recovery decides whether it is a torn new
            // segment or corruption.
            Err(e) => {
                return Err(SegmentOpenError::BadHeader {
                    display,
                    len,
                    reason: e.to_string(),
                });
            }
        };
        if header.hash != hash {
            return Err(SegmentOpenError::Open(OpenError::Corrupted(
                Corruption::at(
                    display,
                    10,
                    format!(
                        "segment uses hash function {} but the ledger uses {hash}",
                        header.hash
                    ),
                ),
            )));
        }
        if header.word != first {
            return Err(SegmentOpenError::Open(OpenError::Corrupted(
                Corruption::at(
                    display,
                    16,
                    format!(
                        "header says the first index is {} but the file name says {first}",
                        header.word
                    ),
                ),
            )));
        }
        Ok(Self {
            first,
            display,
            file,
        })
    }

    /// The file's length.
    pub(crate) fn len(&self) -> Result<u64, IoFailure> {
        self.file
            .len()
            .map_err(|e| IoFailure::new(&self.display, "stat", e))
    }

    /// Reads the frame at `offset` and returns its checked body.
    pub(crate) fn read_frame(&self, offset: u64) -> Result<Vec<u8>, ReadError> {
        let mut hdr = [0u8; FRAME_HEADER_LEN];
        self.file
            .read_exact_at(&mut hdr, offset)
            .map_err(|e| self.read_failure(offset, &e))?;
        let header = FrameHeader::parse(hdr);
        if u64::from(header.len) > MAX_FRAME_BODY {
            return Err(ReadError::Corrupted(Corruption::at(
                &self.display,
                offset,
                format!("frame length {} exceeds the maximum", header.len),
            )));
        }
        let mut body = vec![0u8; header.len as usize];
        self.file
            .read_exact_at(&mut body, offset + FRAME_HEADER_LEN as u64)
            .map_err(|e| self.read_failure(offset, &e))?;
        if !header.check(&body) {
            return Err(ReadError::Corrupted(Corruption::at(
                &self.display,
                offset,
                "frame checksum mismatch",
            )));
        }
        Ok(body)
    }

    /// Reads the frame at `offset` with a single read, when its total length (header
    /// included) is already known from the offset of the entry after it, and returns its
    /// checked body. `None` when anything disagrees (the length in the header, the checksum,
    /// a short file, an I/O error): the caller then reads through [`Segment::read_frame`],
    /// which reports what is wrong.
    pub(crate) fn read_frame_of_len(&self, offset: u64, total: u64) -> Option<Vec<u8>> {
        let body_len = total.checked_sub(FRAME_HEADER_LEN as u64)?;
        if body_len > MAX_FRAME_BODY {
            return None;
        }
        let mut buf = vec![0u8; usize::try_from(total).ok()?];
        self.file.read_exact_at(&mut buf, offset).ok()?;
        let (hdr, body) = buf.split_first_chunk::<FRAME_HEADER_LEN>()?;
        if !FrameHeader::parse(*hdr).check(body) {
            return None;
        }
        buf.drain(..FRAME_HEADER_LEN);
        Some(buf)
    }

    fn read_failure(&self, offset: u64, e: &std::io::Error) -> ReadError {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            ReadError::Corrupted(Corruption::at(
                &self.display,
                offset,
                "the file ends inside this frame",
            ))
        } else {
            ReadError::Io(IoFailure::new(
                &self.display,
                "read",
                std::io::Error::new(e.kind(), e.to_string()),
            ))
        }
    }
}

/// Why a segment could not be opened.
#[derive(Debug)]
pub(crate) enum SegmentOpenError {
    /// The header is missing, short or fails its checksum: a torn new segment or corruption.
    BadHeader {
        display: PathBuf,
        len: u64,
        reason: String,
    },
    /// An I/O error.
    Io(IoFailure),
    /// Any other problem.
    Open(OpenError),
}

impl From<SegmentOpenError> for OpenError {
    fn from(e: SegmentOpenError) -> Self {
        match e {
            SegmentOpenError::BadHeader {
                display, reason, ..
            } => OpenError::Corrupted(Corruption::at(display, 0, reason)),
            SegmentOpenError::Io(io) => OpenError::Io(io),
            SegmentOpenError::Open(o) => o,
        }
    }
}

/// Why a scan stopped before the end of the file.
#[derive(Debug)]
pub(crate) enum ScanStop {
    /// A frame that is incomplete or fails its checksum, at `offset`.
    Bad { offset: u64, reason: String },
    /// An I/O error.
    Io(IoFailure),
}

/// Reads the frames of a segment (or of the checkpoint file) sequentially, in large chunks.
pub(crate) struct Scanner<'a> {
    file: &'a dyn VfsFile,
    display: &'a Path,
    end: u64,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    buf_at: u64,
    /// Position of the next frame within `buf`.
    cursor: usize,
}

impl<'a> Scanner<'a> {
    /// Scans a segment from `offset` up to `end` (normally the file's length).
    pub(crate) fn new(segment: &'a Segment, offset: u64, end: u64) -> Self {
        Self::over(&*segment.file, &segment.display, offset, end)
    }

    /// Scans any framed file from `offset` up to `end`.
    pub(crate) fn over(file: &'a dyn VfsFile, display: &'a Path, offset: u64, end: u64) -> Self {
        Self {
            file,
            display,
            end,
            buf: Vec::new(),
            buf_at: offset,
            cursor: 0,
        }
    }

    /// The file offset of the next frame.
    pub(crate) fn position(&self) -> u64 {
        self.buf_at + self.cursor as u64
    }

    /// Makes sure `need` bytes from the cursor are in the buffer; returns false if the file
    /// ends first.
    fn fill(&mut self, need: usize) -> Result<bool, ScanStop> {
        let have = self.buf.len() - self.cursor;
        if have >= need {
            return Ok(true);
        }
        let pos = self.position();
        let remaining_in_file = self.end.saturating_sub(pos);
        if (need as u64) > remaining_in_file {
            return Ok(false);
        }
        // Move the unread bytes to the front and read more.
        self.buf.drain(..self.cursor);
        self.buf_at = pos;
        self.cursor = 0;
        let want = need.max(SCAN_CHUNK);
        let to_read = usize::try_from((want as u64).min(remaining_in_file)).unwrap_or(need) - have;
        let start = self.buf.len();
        self.buf.resize(start + to_read, 0);
        let read_at = pos + have as u64;
        self.file
            .read_exact_at(&mut self.buf[start..], read_at)
            .map_err(|e| ScanStop::Io(IoFailure::new(self.display, "read", e)))?;
        Ok(true)
    }

    /// The next frame: its offset and checked body, or `None` at the end of the file.
    pub(crate) fn next_frame(&mut self) -> Result<Option<(u64, &[u8])>, ScanStop> {
        let offset = self.position();
        if offset >= self.end {
            return Ok(None);
        }
        if !self.fill(FRAME_HEADER_LEN)? {
            return Err(ScanStop::Bad {
                offset,
                reason: format!(
                    "incomplete frame header: the file ends {} bytes after it starts",
                    self.end - offset
                ),
            });
        }
        let mut hdr = [0u8; FRAME_HEADER_LEN];
        hdr.copy_from_slice(&self.buf[self.cursor..self.cursor + FRAME_HEADER_LEN]);
        let header = FrameHeader::parse(hdr);
        if u64::from(header.len) > MAX_FRAME_BODY {
            return Err(ScanStop::Bad {
                offset,
                reason: format!("frame length {} exceeds the maximum", header.len),
            });
        }
        let total = FRAME_HEADER_LEN + header.len as usize;
        if !self.fill(total)? {
            return Err(ScanStop::Bad {
                offset,
                reason: format!(
                    "incomplete frame: {total} bytes long but the file ends {} bytes after it starts",
                    self.end - offset
                ),
            });
        }
        let body_start = self.cursor + FRAME_HEADER_LEN;
        let body_end = self.cursor + total;
        if !header.check(&self.buf[body_start..body_end]) {
            return Err(ScanStop::Bad {
                offset,
                reason: "frame checksum mismatch".into(),
            });
        }
        self.cursor = body_end;
        Ok(Some((offset, &self.buf[body_start..body_end])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode_frame;
    use crate::vfs::RealVfs;

    #[test]
    fn names_round_trip() {
        assert_eq!(file_name(42), "00000000000000000042.seg");
        assert_eq!(parse_name(&file_name(42)), Some(42));
        assert_eq!(parse_name("42.seg"), None);
        assert_eq!(parse_name("0000000000000000004x.seg"), None);
        assert_eq!(parse_name("00000000000000000042.log"), None);
    }

    #[test]
    fn a_frame_of_known_length_is_read_in_one_go_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let seg =
            Segment::create(&RealVfs, dir.path(), Path::new("s"), 0, HashAlg::Blake3).unwrap();
        let mut bytes = Vec::new();
        encode_frame(b"first body", &mut bytes);
        let second = FILE_HEADER_LEN as u64 + bytes.len() as u64;
        encode_frame(b"second", &mut bytes);
        seg.file
            .write_all_at(&bytes, FILE_HEADER_LEN as u64)
            .unwrap();
        let at = FILE_HEADER_LEN as u64;
        let len = second - at;
        assert_eq!(seg.read_frame_of_len(at, len).unwrap(), b"first body");
        // A wrong length, a length past the end of the file or below a header: no answer,
        // and the careful path still reads the frame.
        assert_eq!(seg.read_frame_of_len(at, len - 1), None);
        assert_eq!(seg.read_frame_of_len(at, len + 1), None);
        assert_eq!(seg.read_frame_of_len(second, 1 << 20), None);
        assert_eq!(seg.read_frame_of_len(at, 3), None);
        assert_eq!(seg.read_frame(at).unwrap(), b"first body");
        assert_eq!(seg.read_frame_of_len(second, 14).unwrap(), b"second");
    }

    #[test]
    fn scanner_reads_frames_and_stops_at_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let seg =
            Segment::create(&RealVfs, dir.path(), Path::new("s"), 0, HashAlg::Blake3).unwrap();
        let mut bytes = Vec::new();
        for i in 0..1000u32 {
            encode_frame(
                &vec![u8::try_from(i % 251).unwrap(); (i % 300) as usize],
                &mut bytes,
            );
        }
        let torn_at = FILE_HEADER_LEN as u64 + bytes.len() as u64;
        bytes.extend_from_slice(&[7, 0, 0]);
        seg.file
            .write_all_at(&bytes, FILE_HEADER_LEN as u64)
            .unwrap();
        let len = seg.len().unwrap();
        let mut sc = Scanner::new(&seg, FILE_HEADER_LEN as u64, len);
        let mut n = 0u32;
        loop {
            match sc.next_frame() {
                Ok(Some((_, body))) => {
                    assert_eq!(body.len(), (n % 300) as usize);
                    n += 1;
                }
                Ok(None) => panic!("the torn tail must be reported"),
                Err(ScanStop::Bad { offset, .. }) => {
                    assert_eq!(offset, torn_at);
                    break;
                }
                Err(ScanStop::Io(e)) => panic!("{e}"),
            }
        }
        assert_eq!(n, 1000);
    }
}
