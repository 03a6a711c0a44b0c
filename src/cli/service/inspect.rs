//! `shoal service inspect`: docker's JSON array, or its human-friendly text.
//!
//! The JSON is bollard's model of a service, which lacks the API's `PreviousSpec`.

use std::time::SystemTime;

use anyhow::Result;
use bollard::Docker;
use bollard::errors::Error as ApiError;
use bollard::query_parameters::InspectServiceOptions;

use super::pretty::pretty;
use crate::cli::connect::Daemon;
use crate::cli::inspect::{self, InspectFormat};

/// Flags and arguments of `service inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Print the information in a human friendly format.
    #[arg(long)]
    pretty: bool,
    /// Output format (default: indented JSON).
    #[arg(short, long, value_enum)]
    format: Option<InspectFormat>,
    /// Services by ID, ID prefix or name.
    #[arg(required = true, value_name = "SERVICE")]
    services: Vec<String>,
}

/// Runs `service inspect`.
pub async fn inspect(daemon: &Daemon, docker: &Docker, args: &InspectArgs) -> Result<()> {
    let mut found = Vec::new();
    for reference in &args.services {
        // Docker asks for the settings left out filled with their defaults.
        let options = InspectServiceOptions {
            insert_defaults: true,
        };
        found.push(
            match docker.inspect_service(reference, Some(options)).await {
                Ok(service) => Ok(service),
                Err(ApiError::DockerResponseServerError {
                    status_code: 404, ..
                }) => Err(format!("Error: no such service: {reference}")),
                Err(error) => Err(daemon.explain(&error.into())),
            },
        );
    }
    let now = SystemTime::now();
    let format = InspectFormat::chosen(args.pretty, args.format);
    inspect::print(format, found, |service| pretty(service, now))
}
