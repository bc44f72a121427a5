//! The harness of the policy and proof-pack command-line tests: `vouch` commands run with a
//! deadline, and a `vouch serve` child on a free loopback port that is killed when dropped.
#![allow(dead_code, reason = "each test binary uses a part of the harness")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Instant;

#[path = "../vouch_process/mod.rs"]
mod vouch_process;

use vouch_process::{COMMAND_DEADLINE, command};
pub use vouch_process::{Output, run};

/// A `vouch serve` child process, killed when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub vkey: String,
}

impl Server {
    pub fn start(data_dir: &Path) -> Self {
        let mut child = command(&[
            "serve",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--checkpoint-every-ms",
            "100",
        ])
        .env("VOUCH_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn vouch serve");
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Self {
            child,
            url: String::new(),
            vkey: String::new(),
        };
        let deadline = Instant::now() + COMMAND_DEADLINE;
        while server.url.is_empty() || server.vkey.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("the startup block of vouch serve");
            if let Some(url) = line.trim().strip_prefix("grpc:") {
                url.trim().clone_into(&mut server.url);
            }
            if let Some(vkey) = line.trim().strip_prefix("verifier key:") {
                vkey.trim().clone_into(&mut server.vkey);
            }
        }
        server
    }

    pub fn client(&self, args: &[&str]) -> Output {
        let mut all = vec!["--server", self.url.as_str()];
        all.extend_from_slice(args);
        run(&all)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn pack(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/policies/high-risk-production")
        .join(path)
        .to_str()
        .unwrap()
        .to_owned()
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

pub const NAME: &str = "high-risk-production-release";
