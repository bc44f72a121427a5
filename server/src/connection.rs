//! Accepted connections, with a deadline on their first bytes.
//!
//! hyper waits for a new connection's HTTP/2 preface without a time limit, so a client that
//! opens a TCP connection and sends nothing, or a few bytes, would hold a task and a file
//! descriptor until it goes away. [`Incoming`] wraps the listener: each accepted connection
//! must deliver its first [`PREFACE_LEN`] bytes (the HTTP/2 connection preface, or the start
//! of a TLS handshake) within `limits.handshake_timeout_ms`, or its next read fails with
//! `TimedOut` and hyper closes it. After that, the HTTP/2 keepalive pings configured on the
//! server (`limits.keepalive_interval_ms`) close connections whose peer stopped answering.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tokio_stream::Stream;
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};

/// The length of the HTTP/2 connection preface (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`).
pub const PREFACE_LEN: usize = 24;

/// The listener's connections, each with a deadline on its first [`PREFACE_LEN`] bytes.
#[derive(Debug)]
pub struct Incoming {
    inner: TcpIncoming,
    handshake_timeout: Duration,
}

impl Incoming {
    /// Wraps `inner`; connections get `handshake_timeout` to send their first bytes.
    pub fn new(inner: TcpIncoming, handshake_timeout: Duration) -> Self {
        Self {
            inner,
            handshake_timeout,
        }
    }
}

impl Stream for Incoming {
    type Item = io::Result<Connection>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let timeout = self.handshake_timeout;
        Pin::new(&mut self.inner)
            .poll_next(cx)
            .map(|accepted| accepted.map(|r| r.map(|s| Connection::new(s, timeout))))
    }
}

/// An accepted TCP connection whose reads fail once its deadline passes before it sent
/// [`PREFACE_LEN`] bytes.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    read: usize,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl Connection {
    fn new(stream: TcpStream, timeout: Duration) -> Self {
        Self {
            stream,
            read: 0,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.read = this
                    .read
                    .saturating_add(buf.filled().len().saturating_sub(before));
                if this.read >= PREFACE_LEN {
                    this.deadline = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let expired = this
                    .deadline
                    .as_mut()
                    .is_some_and(|d| d.as_mut().poll(cx).is_ready());
                if !expired {
                    return Poll::Pending;
                }
                tracing::debug!(
                    peer = ?this.stream.peer_addr().ok(),
                    bytes = this.read,
                    "closing a connection that did not complete its handshake in time"
                );
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no HTTP/2 preface within limits.handshake_timeout_ms",
                )))
            }
            other @ Poll::Ready(Err(_)) => other,
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl Connected for Connection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    async fn pair(timeout: Duration) -> (Connection, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Connection::new(server, timeout), client)
    }

    #[tokio::test]
    async fn a_silent_connection_times_out_and_a_talking_one_does_not() {
        let (mut silent, _client) = pair(Duration::from_millis(20)).await;
        let mut buf = [0u8; 8];
        let e = silent.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);

        // Half a preface is not enough.
        let (mut half, mut client) = pair(Duration::from_millis(20)).await;
        client.write_all(b"PRI * HTTP/2.0").await.unwrap();
        let mut got = [0u8; 14];
        half.read_exact(&mut got).await.unwrap();
        let e = half.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);

        // A whole preface lifts the deadline for good.
        let (mut talking, mut client) = pair(Duration::from_millis(20)).await;
        client
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        let mut preface = [0u8; PREFACE_LEN];
        talking.read_exact(&mut preface).await.unwrap();
        // A read that waits past the deadline.
        let mut later = [0u8; 5];
        let (read, ()) = tokio::join!(talking.read_exact(&mut later), async {
            tokio::time::sleep(Duration::from_millis(60)).await;
            client.write_all(b"later").await.unwrap();
        });
        read.unwrap();
        assert_eq!(&later, b"later");
    }
}
