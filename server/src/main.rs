//! The `vouch` binary: server and command-line tool in one.

fn main() {
    println!("vouch {}", env!("CARGO_PKG_VERSION"));
}
