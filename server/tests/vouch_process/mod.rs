//! Running the `vouch` binary in the command-line tests: one-shot commands with a
//! deadline, `vouch serve` children that are killed when dropped, and long-running commands
//! whose output lines are read as they come.
#![allow(dead_code, reason = "each test binary uses a part of the harness")]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const VOUCH: &str = env!("CARGO_BIN_EXE_vouch");
/// The longest any one command may take.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(20);

/// A finished command.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "command failed: {self:#?}");
        self
    }

    #[track_caller]
    pub fn code(self, code: i32) -> Self {
        assert_eq!(self.code, code, "unexpected exit code: {self:#?}");
        self
    }

    /// Standard output as one JSON document.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {self:#?}"))
    }

    /// Standard output as JSON lines.
    #[track_caller]
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?} in {self:#?}"))
            })
            .collect()
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

/// Reads a child's pipe to the end on a thread of its own.
pub fn drain(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Waits for a child up to `deadline`; kills it and returns `None` if it is still running.
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

/// Runs `vouch` to the end, within [`COMMAND_DEADLINE`].
pub fn run(args: &[&str]) -> Output {
    run_with_input(args, b"")
}

/// Runs `vouch` with `stdin` as standard input, within [`COMMAND_DEADLINE`].
pub fn run_with_input(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vouch");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
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

/// A running `vouch` command whose standard output is read line by line; killed when
/// dropped.
pub struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
    seen: Vec<String>,
}

impl Running {
    pub fn spawn(args: &[&str]) -> Self {
        let mut child = command(args)
            .env("VOUCH_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vouch");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            stderr,
            seen: Vec::new(),
        }
    }

    /// The next line of standard output, within [`COMMAND_DEADLINE`].
    #[track_caller]
    pub fn line(&mut self) -> String {
        let line = self
            .lines
            .recv_timeout(COMMAND_DEADLINE)
            .unwrap_or_else(|_| {
                panic!(
                    "no output line in {COMMAND_DEADLINE:?}; lines so far: {:#?}; stderr:\n{}",
                    self.seen,
                    self.stderr.lock().unwrap()
                )
            });
        self.seen.push(line.clone());
        line
    }

    /// What the command wrote to standard error so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the command to exit and returns its exit code.
    #[track_caller]
    pub fn exit_code(&mut self) -> i32 {
        let status = wait(&mut self.child, COMMAND_DEADLINE).unwrap_or_else(|| {
            panic!(
                "vouch did not exit in {COMMAND_DEADLINE:?}; stderr:\n{}",
                self.stderr()
            )
        });
        status.code().unwrap_or(-1)
    }

    /// Sends SIGTERM.
    pub fn terminate(&mut self) {
        let kill = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(kill.success());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `vouch serve` child.
pub struct Server {
    pub process: Running,
    pub url: String,
    pub vkey: String,
}

impl Server {
    /// Serves `data_dir` on free ports, signing a checkpoint every 100 ms while entries
    /// arrive, with `extra` flags.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        let mut args = vec![
            "serve",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
            "--checkpoint-every-ms",
            "100",
        ];
        args.extend_from_slice(extra);
        let mut process = Running::spawn(&args);
        let (mut url, mut vkey) = (String::new(), String::new());
        while url.is_empty() || vkey.is_empty() {
            let line = process.line();
            if let Some(u) = line.trim().strip_prefix("grpc:") {
                u.trim().clone_into(&mut url);
            }
            if let Some(k) = line.trim().strip_prefix("verifier key:") {
                k.trim().clone_into(&mut vkey);
            }
        }
        Self { process, url, vkey }
    }

    /// Runs a client subcommand against this server.
    pub fn client(&self, args: &[&str]) -> Output {
        let mut all = vec!["--server", self.url.as_str()];
        all.extend_from_slice(args);
        run(&all)
    }

    /// Appends `payload` and waits until a signed checkpoint covers it.
    #[track_caller]
    pub fn append(&self, payload: &str) {
        self.client(&["append", payload, "--wait-checkpoint"])
            .code(0);
    }

    /// Stops the server with SIGTERM and checks it exits cleanly.
    #[track_caller]
    pub fn stop(mut self) {
        self.process.terminate();
        assert_eq!(self.process.exit_code(), 0, "{}", self.process.stderr());
    }
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
