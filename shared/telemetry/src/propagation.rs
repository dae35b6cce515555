//! W3C trace context (`traceparent`, `tracestate`) carried in gRPC metadata, as two small tower
//! layers: the client side injects the current span's context, the server side extracts it and
//! opens the request's span under it.

use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, HeaderValue, Request};
use opentelemetry::propagation::{Extractor, Injector};
use tower::{Layer, Service};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct MetadataInjector<'a>(&'a mut HeaderMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(key.as_bytes()), HeaderValue::from_str(&value))
        {
            self.0.insert(name, value);
        }
    }
}

struct MetadataExtractor<'a>(&'a HeaderMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// Adds the current span's trace context to every outgoing call.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientTraceLayer;

impl<S> Layer<S> for ClientTraceLayer {
    type Service = ClientTraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientTraceService { inner }
    }
}

#[derive(Clone, Debug)]
pub struct ClientTraceService<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for ClientTraceService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let context = tracing::Span::current().context();
        opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.inject_context(&context, &mut MetadataInjector(request.headers_mut()))
        });
        self.inner.call(request)
    }
}

/// Opens one span per incoming call, child of the caller's span when the call carries a trace
/// context.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerTraceLayer;

impl<S> Layer<S> for ServerTraceLayer {
    type Service = ServerTraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerTraceService { inner }
    }
}

#[derive(Clone, Debug)]
pub struct ServerTraceService<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for ServerTraceService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tracing::instrument::Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&MetadataExtractor(request.headers()))
        });
        let method = request.uri().path();
        let span = tracing::info_span!("grpc.server", otel.name = %method, otel.kind = "server", rpc.method = %method);
        // Fails only when no OpenTelemetry layer is installed; the span then stays a plain log span.
        let _ = span.set_parent(parent);
        self.inner.call(request).instrument(span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TracerProvider as _};
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    use tracing_subscriber::layer::SubscriberExt;

    /// One call from a client span to a server: the server's span must belong to the client's
    /// trace and be the child of the client's span.
    #[tokio::test]
    async fn trace_context_crosses_a_grpc_hop() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let _guard = tracing::subscriber::set_default(subscriber);

        let (_reporter, health) = tonic_health::server::health_reporter();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tonic::transport::Server::builder()
            .layer(ServerTraceLayer)
            .add_service(health)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
        let server = tokio::spawn(server.instrument(tracing::Span::none()));

        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{address}")).unwrap().connect_lazy();
        let mut client =
            HealthClient::new(tower::ServiceBuilder::new().layer(ClientTraceLayer).service(channel));
        async {
            client.check(HealthCheckRequest { service: String::new() }).await.unwrap();
        }
        .instrument(tracing::info_span!("caller"))
        .await;
        server.abort();
        provider.force_flush().unwrap();

        let spans = exporter.get_finished_spans().unwrap();
        let caller = spans.iter().find(|s| s.name == "caller").expect("caller span exported");
        let served = spans.iter().find(|s| s.name.contains("Check")).expect("server span exported");
        assert_eq!(served.span_context.trace_id(), caller.span_context.trace_id());
        assert_eq!(served.parent_span_id, caller.span_context.span_id());
        assert_ne!(served.parent_span_id, SpanId::INVALID);
    }
}
