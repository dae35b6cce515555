//! Logging, OpenTelemetry export and W3C trace-context propagation over gRPC metadata.
//!
//! Every binary calls [`init`] once; every server gets [`ServerTraceLayer`] and every client
//! channel [`ClientTraceLayer`], so one request is one trace across the mesh.

mod propagation;

pub use propagation::{ClientTraceLayer, ClientTraceService, ServerTraceLayer, ServerTraceService};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines are written to standard error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable, for terminals.
    #[default]
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Flushes and stops span export when the process ends.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still buffered. Call once, after the servers have drained.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            eprintln!("could not flush telemetry: {error}");
        }
    }
}

/// Installs the global subscriber: logs filtered by `RUST_LOG` (default `info`), and OpenTelemetry
/// OTLP/gRPC export when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the exporter reads the standard
/// `OTEL_*` variables itself).
pub fn init(service_name: &str, format: LogFormat) -> anyhow::Result<Telemetry> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = match format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer().with_writer(std::io::stderr).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr).boxed(),
    };

    let provider = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => {
            let exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic().build()?;
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(Resource::builder().with_service_name(service_name.to_owned()).build())
                    .build(),
            )
        }
        _ => None,
    };
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer().with_tracer(provider.tracer("interlock")).with_filter(filter())
    });

    tracing_subscriber::registry().with(fmt.with_filter(filter())).with(otel).try_init()?;
    Ok(Telemetry { provider })
}

/// The W3C trace id and span id of the current span, when it belongs to a sampled trace, for
/// audit events that point back at the request's trace.
pub fn current_trace_ids() -> Option<(String, String)> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context.is_valid().then(|| (span_context.trace_id().to_string(), span_context.span_id().to_string()))
}
