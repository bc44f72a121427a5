//! The harness of the policy and proof-pack command-line tests: `vouch` commands run with a
//! deadline, and a `vouch serve` child on a free loopback port that is killed when dropped.
#![allow(dead_code, reason = "each test binary uses a part of the harness")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const VOUCH: &str = env!("CARGO_BIN_EXE_vouch");
/// The longest any one command may take.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(15);

#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    #[track_caller]
    pub fn code(self, code: i32) -> Self {
        assert_eq!(self.code, code, "unexpected exit code: {self:#?}");
        self
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {self:#?}"))
    }
}

/// A `vouch` command with no `VOUCH_*` variables from the environment.
pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(VOUCH);
    cmd.args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("VOUCH_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

pub fn drain(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

pub fn wait(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `vouch` within [`COMMAND_DEADLINE`].
pub fn run(args: &[&str]) -> Output {
    let mut child = command(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vouch");
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let status = wait(&mut child, COMMAND_DEADLINE)
        .unwrap_or_else(|| panic!("vouch {args:?} did not finish in {COMMAND_DEADLINE:?}"));
    Output {
        code: status.code().unwrap_or(-1),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

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
