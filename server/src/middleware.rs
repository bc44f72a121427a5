//! The tower layer in front of every gRPC service: authentication against the permission
//! table, a tracing span per call, metrics by method and status code, and a clearer message
//! for requests over the message-size limit.
//!
//! Being a layer on the whole router rather than per-service interceptors, it sees every
//! call, including those of services added later, and refuses methods without a rule.
//! The status of a call is read from the response headers (errors returned before any
//! message, "trailers-only") or from the trailers at the end of the body; a body dropped
//! before its trailers (the client went away) counts as `CANCELLED`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Frame, SizeHint};
use tokio::sync::watch;
use tonic::body::Body;
use tonic::codegen::Bytes;
use tonic::codegen::http::{HeaderMap, Request, Response};
use tonic::{Code, Status};
use tracing::Instrument as _;

use crate::auth::Authenticator;
use crate::metrics::{Metrics, code_name};

struct Shared {
    auth: Authenticator,
    metrics: Arc<Metrics>,
    max_message_bytes: usize,
    shutdown: watch::Receiver<bool>,
}

/// The layer; see the module documentation.
#[derive(Clone)]
pub struct RpcLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RpcLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcLayer")
            .field("auth", &self.shared.auth)
            .finish_non_exhaustive()
    }
}

impl RpcLayer {
    /// A layer checking calls with `auth` and recording into `metrics`. Once `shutdown`
    /// turns true, response streams that are waiting for their next message end with
    /// `UNAVAILABLE`, so that long-lived streams (health watches, reflection, checkpoint
    /// watches) do not hold a graceful shutdown open.
    pub fn new(
        auth: Authenticator,
        metrics: Arc<Metrics>,
        max_message_bytes: usize,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                auth,
                metrics,
                max_message_bytes,
                shutdown,
            }),
        }
    }
}

impl<S> tower_layer::Layer<S> for RpcLayer {
    type Service = RpcService<S>;

    fn layer(&self, inner: S) -> RpcService<S> {
        RpcService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`RpcLayer`] wraps around the router.
#[derive(Clone)]
pub struct RpcService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for RpcService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcService").finish_non_exhaustive()
    }
}

impl<S> tower_service::Service<Request<Body>> for RpcService<S>
where
    S: tower_service::Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let start = Instant::now();
        let path = req.uri().path().to_owned();
        let shared = self.shared.clone();
        let principal = match shared.auth.authorize(&path, req.headers()) {
            Ok(p) => p,
            Err(status) => {
                let observer = Observer {
                    shared,
                    path,
                    start,
                    span: tracing::info_span!("rpc", method = %short(req.uri().path()), principal = "-"),
                };
                observer.finish(status.code(), status.message());
                return Box::pin(std::future::ready(Ok(status.into_http())));
            }
        };
        let span = tracing::info_span!("rpc", method = %short(&path), principal = %principal.name);
        req.extensions_mut().insert(principal);
        // The service was made ready by `poll_ready`; call that one and leave a fresh clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let call_span = span.clone();
        Box::pin(
            async move {
                let mut guard = Observer {
                    shared,
                    path,
                    start,
                    span,
                }
                .guard();
                let response = inner.call(req).await?;
                let Some(observer) = guard.0.take() else {
                    return Ok(response);
                };
                let (mut parts, body) = response.into_parts();
                if let Some(status) =
                    status_of(&mut parts.headers, observer.shared.max_message_bytes)
                {
                    observer.finish(status.code(), status.message());
                    return Ok(Response::from_parts(parts, body));
                }
                let mut shutdown = observer.shared.shutdown.clone();
                let body = ObservedBody {
                    inner: body,
                    observer: Some(observer),
                    stop: Box::pin(async move {
                        let _ = shutdown.wait_for(|s| *s).await;
                    }),
                    ended: false,
                };
                Ok(Response::from_parts(parts, Body::new(body)))
            }
            .instrument(call_span),
        )
    }
}

fn short(path: &str) -> &str {
    path.trim_start_matches('/')
}

/// The status in `headers`, if any, after rewriting tonic's message for an oversized request
/// into one that names the limit.
fn status_of(headers: &mut HeaderMap, max_message_bytes: usize) -> Option<Status> {
    let status = Status::from_header_map(headers)?;
    if status.code() == Code::OutOfRange
        && status
            .message()
            .contains("decoded message length too large")
    {
        let found = status
            .message()
            .split_whitespace()
            .find_map(|w| w.parse::<u64>().ok())
            .map_or_else(String::new, |n| format!("{n} bytes "));
        let clearer = Status::resource_exhausted(format!(
            "request message {found}is over the server's limit limits.max_message_bytes = {max_message_bytes}"
        ));
        headers.remove(Status::GRPC_STATUS);
        headers.remove("grpc-message");
        if clearer.add_header(headers).is_ok() {
            return Some(clearer);
        }
    }
    Some(status)
}

/// Records a call once: into the metrics and the log.
struct Observer {
    shared: Arc<Shared>,
    path: String,
    start: Instant,
    span: tracing::Span,
}

/// Records `CANCELLED` if the call is dropped before it answers (client gone, timeout).
struct ObserverGuard(Option<Observer>);

impl Drop for ObserverGuard {
    fn drop(&mut self) {
        if let Some(o) = self.0.take() {
            o.finish(
                Code::Cancelled,
                "dropped before answering (client gone or timeout)",
            );
        }
    }
}

impl Observer {
    fn guard(self) -> ObserverGuard {
        ObserverGuard(Some(self))
    }

    fn finish(self, code: Code, message: &str) {
        let elapsed = self.start.elapsed();
        self.shared.metrics.record_rpc(&self.path, code, elapsed);
        let _entered = self.span.enter();
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let code = code_name(code);
        match code {
            "OK" => tracing::debug!(code, micros, "rpc finished"),
            "INTERNAL" | "DATA_LOSS" | "UNKNOWN" => {
                tracing::error!(code, micros, message, "rpc failed");
            }
            _ => tracing::info!(code, micros, message, "rpc refused"),
        }
    }
}

/// A response body that records the call's status when its trailers pass, and ends with
/// `UNAVAILABLE` when the server shuts down while it waits for its next frame.
struct ObservedBody {
    inner: Body,
    observer: Option<Observer>,
    stop: Pin<Box<dyn Future<Output = ()> + Send>>,
    ended: bool,
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        if let Some(o) = self.observer.take() {
            o.finish(
                Code::Cancelled,
                "the client went away before the end of the response",
            );
        }
    }
}

impl http_body::Body for ObservedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if polled.is_pending() && this.stop.as_mut().poll(cx).is_ready() {
            this.ended = true;
            let status = crate::status::shutting_down();
            if let Some(o) = this.observer.take() {
                o.finish(status.code(), status.message());
            }
            let mut trailers = HeaderMap::new();
            if status.add_header(&mut trailers).is_ok() {
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
            return Poll::Ready(None);
        }
        match &polled {
            Poll::Ready(Some(Ok(frame))) if frame.is_trailers() => {
                if let (Some(o), Some(trailers)) = (this.observer.take(), frame.trailers_ref()) {
                    match Status::from_header_map(trailers) {
                        Some(s) => o.finish(s.code(), s.message()),
                        None => o.finish(Code::Unknown, "trailers without grpc-status"),
                    }
                }
            }
            Poll::Ready(Some(Err(status))) => {
                if let Some(o) = this.observer.take() {
                    o.finish(status.code(), status.message());
                }
            }
            Poll::Ready(None) => {
                if let Some(o) = this.observer.take() {
                    o.finish(Code::Unknown, "the response ended without a status");
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
