//! The `vouch` binary: server and command-line tool in one (see `vouch_server::cli`).

/// mimalloc instead of the system allocator: the server allocates and frees many small
/// objects per call on several threads (see `docs/benchmarks.md`, "Allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    vouch_server::cli::main()
}
