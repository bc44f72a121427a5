//! The `vouch` binary: server and command-line tool in one (see `vouch_server::cli`).

fn main() -> std::process::ExitCode {
    vouch_server::cli::main()
}
