//! The file-system interface the engine writes through.
//!
//! Every write, sync, rename and removal the engine performs goes through a [`Vfs`], so that
//! tests can inject faults (a failed `fsync`, a short write, a full disk) and simulate a crash
//! that keeps only the bytes that were durable. [`RealVfs`] is the production implementation:
//! a thin layer over `std::fs` and positional I/O.
//!
//! Reads of the derived fixed-record files go through memory maps of the [`VfsFile::std_file`]
//! handle; all other reads go through [`VfsFile::read_exact_at`].

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::Arc;

/// How to open a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write; the file must not exist yet.
    CreateNew,
}

/// A file opened through a [`Vfs`].
pub trait VfsFile: Send + Sync + fmt::Debug {
    /// Reads exactly `buf.len()` bytes at `offset`.
    ///
    /// # Errors
    ///
    /// Any I/O error, or `UnexpectedEof` if the file ends first.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`.
    ///
    /// # Errors
    ///
    /// Any I/O error; part of `buf` may have been written.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes the file's data durable (`fdatasync`).
    ///
    /// # Errors
    ///
    /// Any I/O error. After a failed sync the page cache cannot be trusted.
    fn sync_data(&self) -> io::Result<()>;
    /// Sets the file's length, truncating or extending with zeros.
    ///
    /// # Errors
    ///
    /// Any I/O error.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The file's current length.
    ///
    /// # Errors
    ///
    /// Any I/O error.
    fn len(&self) -> io::Result<u64>;
    /// Whether the file is empty.
    ///
    /// # Errors
    ///
    /// Any I/O error.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Reserves disk space so that writes below `len` cannot fail for lack of space.
    ///
    /// # Errors
    ///
    /// Any I/O error, typically "no space left on device".
    fn allocate(&self, len: u64) -> io::Result<()>;
    /// The underlying `std` file, used only to memory-map it for reading.
    fn std_file(&self) -> &File;
}

/// The file-system operations the engine needs.
pub trait Vfs: Send + Sync + fmt::Debug {
    /// Opens a file.
    ///
    /// # Errors
    ///
    /// Any I/O error; `NotFound` or `AlreadyExists` as the mode implies.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn VfsFile>>;
    /// Creates a directory and its parents.
    ///
    /// # Errors
    ///
    /// Any I/O error.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Renames a file atomically within one directory.
    ///
    /// # Errors
    ///
    /// Any I/O error.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    ///
    /// # Errors
    ///
    /// Any I/O error.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory and everything below it.
    ///
    /// # Errors
    ///
    /// Any I/O error.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Makes a directory's entries durable (fsync of the directory).
    ///
    /// # Errors
    ///
    /// Any I/O error.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// The names of the entries of a directory, sorted.
    ///
    /// # Errors
    ///
    /// Any I/O error.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Whether a path exists.
    fn exists(&self, path: &Path) -> bool;
    /// Called before each batch the engine writes to the secondary index in `dir` (the
    /// ledger's `sled` directory), which sled writes through its own files, not through this
    /// trait. A fault-injecting file system fails it to stand for sled failing (a full disk,
    /// an I/O error); the real file system does nothing.
    ///
    /// # Errors
    ///
    /// The error the index write is to fail with.
    fn before_index_write(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
    /// Reads a whole (small) file.
    ///
    /// # Errors
    ///
    /// Any I/O error.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let f = self.open(path, OpenMode::Read)?;
        let len = usize::try_from(f.len()?)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large"))?;
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, 0)?;
        Ok(buf)
    }
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealVfs;

#[derive(Debug)]
struct RealFile {
    file: File,
}

impl VfsFile for RealFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        fs4::FileExt::allocate(&self.file, len)
    }

    fn std_file(&self) -> &File {
        &self.file
    }
}

impl Vfs for RealVfs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn VfsFile>> {
        let mut opts = OpenOptions::new();
        match mode {
            OpenMode::Read => opts.read(true),
            OpenMode::ReadWrite => opts.read(true).write(true),
            OpenMode::CreateNew => opts.read(true).write(true).create_new(true),
        };
        Ok(Arc::new(RealFile {
            file: opts.open(path)?,
        }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir_all(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}
