//! Logging and tracing set-up: `tracing` to stderr, as text or JSON, filtered by `--log`; and,
//! with `--otlp-endpoint`, spans exported over OTLP/gRPC with W3C trace-context propagation.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::cli::LogFormat;
use crate::config::CommonSettings;

/// Spans exported over OTLP: `info` and above, whatever the log filter says, so turning logs
/// down never silently turns traces off.
const TRACES_FILTER: &str = "info";

/// What `init` set up; `shutdown` flushes the spans still buffered.
#[derive(Debug)]
#[must_use = "call `shutdown` so buffered spans are exported before the process ends"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built from the endpoint.
    #[error("cannot export traces to {endpoint}: {source}")]
    Exporter {
        /// The configured endpoint.
        endpoint: String,
        /// What the exporter said.
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// A global subscriber was already installed.
    #[error("logging was already set up: {0}")]
    AlreadySet(#[from] tracing_subscriber::util::TryInitError),
}

/// Installs the global subscriber (and, with an OTLP endpoint, the tracer provider and the
/// trace-context propagator). Call once, first thing, inside the Tokio runtime: the gRPC
/// exporter's channel lives on it. `service` names the process in traces.
pub fn init(settings: &CommonSettings, service: &'static str) -> Result<Telemetry, TelemetryError> {
    // Validated in `CommonSettings::from_args`; fall back to `info` rather than panic anyway.
    let log_filter = tracing_subscriber::EnvFilter::try_new(&settings.log_filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = match settings.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(log_filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .with_filter(log_filter)
            .boxed(),
    };
    let Some(endpoint) = &settings.otlp_endpoint else {
        tracing_subscriber::registry().with(logs).try_init()?;
        return Ok(Telemetry { provider: None });
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.as_str())
        .build()
        .map_err(|source| TelemetryError::Exporter {
            endpoint: endpoint.to_string(),
            source,
        })?;
    let resource = Resource::builder()
        .with_service_name(service)
        .with_attributes([
            opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            opentelemetry::KeyValue::new("service.instance.id", ulid::Ulid::new().to_string()),
        ])
        .build();
    let provider = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_batch_exporter(exporter)
        .build();
    let traces = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("portcullis"))
        .with_filter(tracing_subscriber::EnvFilter::new(TRACES_FILTER));
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()?;
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    tracing::info!(%endpoint, service, "Exporting traces over OTLP.");
    Ok(Telemetry {
        provider: Some(provider),
    })
}

impl Telemetry {
    /// Exports what is still buffered and stops the exporter. Blocks (briefly) on the export.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        match flushed {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("portcullis: exporting the last traces failed: {error}"),
            Err(error) => eprintln!("portcullis: exporting the last traces failed: {error}"),
        }
    }
}
