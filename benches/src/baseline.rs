//! The peers Vouch's append figures are compared with in the `baselines` binary: a
//! hash-chained append table in SQLite and a raw write+fsync loop (see
//! [`crate::workload::RawLog`]) over the frames Vouch writes for the same entries.
//!
//! The SQLite chain is what an application would build without a ledger database: each row
//! holds its payload and `sha256(previous hash ‖ payload)`, so a changed row breaks every
//! hash after it. Durability matches Vouch's `fsync` mode: `synchronous = FULL`, so a
//! commit returns once it is on disk, in WAL mode or with a rollback journal; single-entry
//! appends commit one transaction per entry, batches one transaction per batch. The previous
//! hash is kept in memory rather than read back, which favours SQLite.
#![allow(clippy::doc_markdown, reason = "SQLite is a product name, not code")]

use std::path::Path;

use rusqlite::{Connection, params};
use sha2::{Digest, Sha256};

/// How SQLite makes a commit durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Journal {
    /// `journal_mode = WAL`: a commit appends to the write-ahead log and syncs it.
    Wal,
    /// `journal_mode = DELETE`: the rollback journal, written, synced and deleted per
    /// commit (SQLite's default).
    Delete,
}

impl Journal {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Journal::Wal => "wal",
            Journal::Delete => "delete",
        }
    }
}

/// The hash of the first row's predecessor.
pub const GENESIS: [u8; 32] = [0; 32];

/// `sha256(prev ‖ payload)`.
pub fn chain_hash(prev: &[u8; 32], payload: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(payload);
    h.finalize().into()
}

/// A hash-chained append table in SQLite with `synchronous = FULL`.
#[derive(Debug)]
pub struct SqliteChain {
    conn: Connection,
    prev: [u8; 32],
    /// Rows appended (SQLite's integers are signed).
    rows: i64,
}

const INSERT: &str = "INSERT INTO chain (id, payload, hash) VALUES (?1, ?2, ?3)";

impl SqliteChain {
    /// Creates the database file at `path` (which must not exist) with the chain table.
    ///
    /// # Errors
    ///
    /// SQLite's errors.
    pub fn create(path: &Path, journal: Journal) -> rusqlite::Result<Self> {
        let conn = Connection::open(path)?;
        let mode: String = conn.query_row(
            &format!("PRAGMA journal_mode = {}", journal.name()),
            [],
            |r| r.get(0),
        )?;
        debug_assert_eq!(mode, journal.name());
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE chain (id INTEGER PRIMARY KEY, payload BLOB NOT NULL, hash BLOB NOT NULL)",
        )?;
        Ok(Self {
            conn,
            prev: GENESIS,
            rows: 0,
        })
    }

    /// Appends one row in a transaction of its own (durable when it returns).
    ///
    /// # Errors
    ///
    /// SQLite's errors.
    pub fn append(&mut self, payload: &[u8]) -> rusqlite::Result<()> {
        let hash = chain_hash(&self.prev, payload);
        self.conn
            .prepare_cached(INSERT)?
            .execute(params![self.rows, payload, &hash[..]])?;
        self.prev = hash;
        self.rows += 1;
        Ok(())
    }

    /// Appends the payloads as consecutive rows in one transaction.
    ///
    /// # Errors
    ///
    /// SQLite's errors; nothing is appended then.
    pub fn append_batch(&mut self, payloads: &[Vec<u8>]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        let mut prev = self.prev;
        let mut rows = self.rows;
        {
            let mut insert = tx.prepare_cached(INSERT)?;
            for p in payloads {
                let hash = chain_hash(&prev, p);
                insert.execute(params![rows, p, &hash[..]])?;
                prev = hash;
                rows += 1;
            }
        }
        tx.commit()?;
        self.prev = prev;
        self.rows = rows;
        Ok(())
    }

    /// Rows appended.
    pub fn rows(&self) -> u64 {
        u64::try_from(self.rows).unwrap_or(0)
    }

    /// Re-reads the table and checks every row's hash against its predecessor; returns the
    /// number of rows, or the id of the first row that does not match.
    ///
    /// # Errors
    ///
    /// SQLite's errors, or `Ok(Err(id))` for a broken chain.
    pub fn verify(&self) -> rusqlite::Result<Result<u64, u64>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, payload, hash FROM chain ORDER BY id")?;
        let mut rows = stmt.query([])?;
        let mut prev = GENESIS;
        let mut n: i64 = 0;
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let payload: Vec<u8> = row.get(1)?;
            let hash: Vec<u8> = row.get(2)?;
            let want = chain_hash(&prev, &payload);
            if id != n || hash != want {
                return Ok(Err(u64::try_from(id).unwrap_or(u64::MAX)));
            }
            prev = want;
            n += 1;
        }
        Ok(Ok(u64::try_from(n).unwrap_or(0)))
    }

    /// The connection, for tests that tamper with the table.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn the_chain_links_every_row_and_detects_a_change() {
        for journal in [Journal::Wal, Journal::Delete] {
            let dir = tempfile::tempdir().unwrap();
            let mut chain = SqliteChain::create(&dir.path().join("c.db"), journal).unwrap();
            chain.append(b"a").unwrap();
            chain.append(b"b").unwrap();
            chain
                .append_batch(&[b"c".to_vec(), b"d".to_vec(), b"e".to_vec()])
                .unwrap();
            assert_eq!(chain.rows(), 5);
            assert_eq!(chain.verify().unwrap(), Ok(5));
            let second = chain_hash(&chain_hash(&GENESIS, b"a"), b"b");
            let stored: Vec<u8> = chain
                .connection()
                .query_row("SELECT hash FROM chain WHERE id = 1", [], |r| r.get(0))
                .unwrap();
            assert_eq!(stored, second);
            chain
                .connection()
                .execute("UPDATE chain SET payload = x'7a' WHERE id = 3", [])
                .unwrap();
            assert_eq!(chain.verify().unwrap(), Err(3), "{}", journal.name());
        }
    }
}
