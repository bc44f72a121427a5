//! Raw gRPC over HTTP/2 (the `h2` crate), for calls the generated client cannot make:
//! malformed frames, bytes that are not the request type, any method by its path, and
//! headers of any shape.

use std::net::SocketAddr;
use std::time::Duration;

use prost::Message as _;
use tonic::Code;
use tonic::codegen::Bytes;
use tonic::codegen::http;

/// Sends one gRPC call with `body` as its raw request body (frames included), with an
/// `authorization` header if given, and returns the gRPC status code and message. A call
/// that got no gRPC status has `None`; with `stop_at_headers`, so has a call whose response
/// started (headers without a status), which is then abandoned.
pub async fn raw_call(
    addr: SocketAddr,
    path: &str,
    body: Bytes,
    authorization: Option<&str>,
    stop_at_headers: bool,
) -> (Option<Code>, String) {
    let call = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (send, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(conn);
        let mut send = send.ready().await.unwrap();
        let mut request = http::Request::builder()
            .method("POST")
            .uri(format!("http://{addr}{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let request = request.body(()).unwrap();
        let (response, mut stream) = send.send_request(request, false).unwrap();
        // The server may answer (and end the stream) from the headers alone, before the body.
        let _ = stream.send_data(body, true);
        let response = response.await.unwrap();
        let (parts, mut body) = response.into_parts();
        let status_of = |headers: &http::HeaderMap| {
            headers.get("grpc-status").map(|v| {
                let code = Code::from_bytes(v.as_bytes());
                let message = headers
                    .get("grpc-message")
                    .map(|m| percent_decode(m.to_str().unwrap_or_default()))
                    .unwrap_or_default();
                (Some(code), message)
            })
        };
        if let Some(status) = status_of(&parts.headers) {
            return status;
        }
        if stop_at_headers {
            return (None, "the response started".to_owned());
        }
        while let Some(data) = body.data().await {
            let data = data.unwrap();
            let _ = body.flow_control().release_capacity(data.len());
        }
        match body.trailers().await.unwrap() {
            Some(trailers) => {
                status_of(&trailers).unwrap_or((None, format!("trailers {trailers:?}")))
            }
            None => (None, format!("HTTP {}", parts.status)),
        }
    };
    tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("the server answers a raw call")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(Ok(b)) = s.get(i + 1..i + 3).map(|h| u8::from_str_radix(h, 16))
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A gRPC frame: uncompressed, with its length.
pub fn frame(message: &[u8]) -> Bytes {
    let mut out = vec![0u8];
    out.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    out.extend_from_slice(message);
    out.into()
}

/// Every method of every service the server serves, as `/package.Service/Method`, and whether
/// its requests are a stream.
pub fn every_method() -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for set in [
        vouch_server::proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ] {
        let fds = prost_types::FileDescriptorSet::decode(set).unwrap();
        for file in &fds.file {
            for svc in &file.service {
                for m in &svc.method {
                    out.push((
                        format!("/{}.{}/{}", file.package(), svc.name(), m.name()),
                        m.client_streaming(),
                    ));
                }
            }
        }
    }
    assert!(out.len() >= 27, "{out:?}");
    out
}
