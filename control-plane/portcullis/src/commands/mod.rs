//! One function per subcommand; each validates its settings, starts its parts, serves until a
//! signal, then shuts down in order.

mod cluster;
mod dev;
mod projector;

use crate::cli::Command;
use crate::config::{AdminSettings, CommonSettings, DataPlaneSettings, DevSettings, NatsSettings};

/// Runs `command` to completion, then flushes the traces it exported.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Dev(args) => {
            let settings = DevSettings::from_args(&args)?;
            let telemetry = crate::telemetry::init(&settings.common, "portcullis")?;
            finish(telemetry, dev::run(settings).await).await
        }
        Command::ControlPlane(args) => {
            let common = CommonSettings::from_args(&args.common)?;
            let nats = NatsSettings::from_args(&args.nats)?;
            let admin = AdminSettings::from_args(&args.admin)?;
            let telemetry = crate::telemetry::init(&common, "portcullis-control-plane")?;
            let outcome =
                cluster::control_plane(common, nats, admin, args.allow_private_upstreams).await;
            finish(telemetry, outcome).await
        }
        Command::DataPlane(args) => {
            let settings = DataPlaneSettings::from_args(&args)?;
            let telemetry = crate::telemetry::init(&settings.common, "portcullis-data-plane")?;
            finish(telemetry, cluster::data_plane(settings).await).await
        }
        Command::Projector(args) => {
            let common = CommonSettings::from_args(&args.common)?;
            let nats = NatsSettings::from_args(&args.nats)?;
            let telemetry = crate::telemetry::init(&common, "portcullis-projector")?;
            finish(telemetry, cluster::projector(common, nats).await).await
        }
    }
}

async fn finish(
    telemetry: crate::telemetry::Telemetry,
    outcome: anyhow::Result<()>,
) -> anyhow::Result<()> {
    telemetry.shutdown().await;
    outcome
}
