//! Names the issue behind every RPC that has not been implemented yet.
//!
//! Unimplemented methods fall through to tonic's generated default, which answers UNIMPLEMENTED
//! with a generic message; this layer replaces that answer with one naming the issue that brings
//! the method, with an `ErrorInfo` (reason `NOT_IMPLEMENTED_YET`). Implemented methods pass
//! untouched, so nothing here needs editing as methods land.

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::{Request, Response};
use interlock_rpc::unimplemented_until;
use tower::{Layer, Service};

/// tonic's message for a generated default method.
const GENERATED_DEFAULT_MESSAGE: &str = "Not yet implemented";

/// Package prefix → the issue that implements it.
const PENDING_ISSUES: &[(&str, u32, &str)] = &[
    ("/interlock.registry.v1.", 3, "registry: agencies, centers, credentials and sharing agreements"),
    ("/interlock.records.v1.", 4, "records: contributed records and reads under the agreements"),
    ("/interlock.deconfliction.v1.", 5, "deconfliction: targets, operations and conflicts"),
    ("/interlock.audit.v1.", 6, "audit: the tamper-evident log"),
];

#[derive(Clone, Copy, Debug, Default)]
pub struct PendingRpcLayer;

impl<S> Layer<S> for PendingRpcLayer {
    type Service = PendingRpcService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PendingRpcService { inner }
    }
}

#[derive(Clone, Debug)]
pub struct PendingRpcService<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for PendingRpcService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            let generated_default =
                tonic::Status::from_header_map(response.headers()).is_some_and(|status| {
                    status.code() == tonic::Code::Unimplemented
                        && status.message() == GENERATED_DEFAULT_MESSAGE
                });
            match PENDING_ISSUES.iter().find(|(prefix, _, _)| path.starts_with(prefix)) {
                Some((_, issue, what)) if generated_default => {
                    let rpc = path.trim_start_matches('/');
                    Ok(unimplemented_until(rpc, *issue, what).into_http())
                }
                _ => Ok(response),
            }
        })
    }
}
