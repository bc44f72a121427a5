//! The generated `vouch.v1` protobuf types, tonic services and clients.

/// Package `vouch.v1`.
#[allow(
    missing_docs,
    clippy::pedantic,
    clippy::doc_markdown,
    unused_qualifications,
    reason = "generated code"
)]
pub mod v1 {
    tonic::include_proto!("vouch.v1");
}

/// The encoded file descriptor set of every Vouch proto, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/vouch_descriptor.bin"));
