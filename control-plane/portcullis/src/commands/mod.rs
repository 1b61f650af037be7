//! One function per subcommand; each validates its settings, starts its parts, serves until a
//! signal, then shuts down in order.

mod cluster;
mod dev;
mod projector;

use crate::cli::Command;
use crate::config::{AdminSettings, CommonSettings, DataPlaneSettings, DevSettings, NatsSettings};

/// Runs `command` to completion.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Dev(args) => {
            let settings = DevSettings::from_args(&args)?;
            crate::telemetry::init(&settings.common);
            dev::run(settings).await
        }
        Command::ControlPlane(args) => {
            let common = CommonSettings::from_args(&args.common)?;
            let nats = NatsSettings::from_args(&args.nats)?;
            let admin = AdminSettings::from_args(&args.admin)?;
            crate::telemetry::init(&common);
            cluster::control_plane(common, nats, admin, args.allow_private_upstreams).await
        }
        Command::DataPlane(args) => {
            let settings = DataPlaneSettings::from_args(&args)?;
            crate::telemetry::init(&settings.common);
            cluster::data_plane(settings).await
        }
        Command::Projector(args) => {
            let common = CommonSettings::from_args(&args.common)?;
            let nats = NatsSettings::from_args(&args.nats)?;
            crate::telemetry::init(&common);
            cluster::projector(common, nats).await
        }
    }
}
