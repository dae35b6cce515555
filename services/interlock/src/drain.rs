//! Ending calls when the server shuts down, so that draining finishes.
//!
//! tonic's graceful shutdown stops accepting connections and waits for every call in flight to
//! end. Most calls end by themselves; a watch (`WatchGrants`, `WatchRevocations`,
//! `WatchConflicts`, `WatchEscalations`, `grpc.health.v1.Health/Watch`) never does, so one open
//! watch used to hold the server open for the whole grace period — and then past it, since the
//! connections are served by tasks of their own that aborting the server does not stop.
//!
//! [`DrainLayer`] ends a watch as soon as shutdown begins, and any other call only if it is still
//! running when the grace period is over. An ended call gets UNAVAILABLE, which every gRPC client
//! treats as "retry elsewhere": a watch resumes from its cursor on another replica.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::Frame;
use tokio::sync::watch;
use tonic::codegen::{Bytes, StdError};
use tower::{Layer, Service};

const SHUTTING_DOWN: &str = "the server is shutting down; reconnect (to another replica) and resume";

type EndSignal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Whether `path` (`/package.Service/Method`) is a watch: an open-ended subscription.
fn is_watch(path: &str) -> bool {
    path.rsplit('/').next().is_some_and(|method| method.starts_with("Watch"))
}

/// Completes when `flag` is raised. `if_dropped` says whether a dropped sender counts as raised.
fn raised(mut flag: watch::Receiver<bool>, if_dropped: bool) -> EndSignal {
    Box::pin(async move {
        if flag.wait_for(|raised| *raised).await.is_err() && !if_dropped {
            std::future::pending::<()>().await;
        }
    })
}

/// See the module documentation.
#[derive(Clone)]
pub struct DrainLayer {
    /// Raised when shutdown begins (also when the server's owner is dropped, as for the server).
    stopping: watch::Receiver<bool>,
    /// Raised when the grace period is over.
    grace_over: watch::Receiver<bool>,
}

impl DrainLayer {
    pub fn new(stopping: watch::Receiver<bool>, grace_over: watch::Receiver<bool>) -> Self {
        Self { stopping, grace_over }
    }
}

impl<S> Layer<S> for DrainLayer {
    type Service = Drain<S>;

    fn layer(&self, inner: S) -> Drain<S> {
        Drain { inner, layer: self.clone() }
    }
}

#[derive(Clone)]
pub struct Drain<S> {
    inner: S,
    layer: DrainLayer,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Drain<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<StdError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let (flag, if_dropped) = match is_watch(request.uri().path()) {
            true => (&self.layer.stopping, true),
            false => (&self.layer.grace_over, false),
        };
        let mut before_response = raised(flag.clone(), if_dropped);
        let during_body = raised(flag.clone(), if_dropped);
        let response = self.inner.call(request);
        Box::pin(async move {
            tokio::select! {
                response = response => Ok(response?.map(|body| {
                    tonic::body::Body::new(EndOnSignal {
                        inner: tonic::body::Body::new(body),
                        end: during_body,
                        done: false,
                    })
                })),
                () = &mut before_response => Ok(tonic::Status::unavailable(SHUTTING_DOWN).into_http()),
            }
        })
    }
}

/// A response body that ends with UNAVAILABLE trailers once `end` completes.
struct EndOnSignal {
    inner: tonic::body::Body,
    end: EndSignal,
    /// Trailers were sent (by the call or by us): nothing may follow.
    done: bool,
}

impl http_body::Body for EndOnSignal {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if this.end.as_mut().poll(cx).is_ready() {
            this.done = true;
            let mut trailers = http::HeaderMap::new();
            return Poll::Ready(Some(
                tonic::Status::unavailable(SHUTTING_DOWN)
                    .add_header(&mut trailers)
                    .map(|()| Frame::trailers(trailers)),
            ));
        }
        let frame = Pin::new(&mut this.inner).poll_frame(cx);
        match &frame {
            Poll::Ready(None) => this.done = true,
            Poll::Ready(Some(Ok(frame))) if frame.is_trailers() => this.done = true,
            _ => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::is_watch;

    #[test]
    fn watches_are_told_apart_by_their_method_name() {
        for watch in [
            "/interlock.registry.v1.GrantService/WatchGrants",
            "/interlock.registry.v1.AuthenticationService/WatchRevocations",
            "/interlock.deconfliction.v1.DeconflictionService/WatchConflicts",
            "/grpc.health.v1.Health/Watch",
        ] {
            assert!(is_watch(watch), "{watch}");
        }
        for call in [
            "/interlock.records.v1.RecordsService/IngestRecords",
            "/interlock.registry.v1.GrantService/ListGrants",
            "/grpc.health.v1.Health/Check",
            "/interlock.Watch/Get",
        ] {
            assert!(!is_watch(call), "{call}");
        }
    }
}
