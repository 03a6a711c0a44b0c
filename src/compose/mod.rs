//! Compose v3 files, turned into the networks and services of a stack as `docker stack
//! deploy` turns them: all in the client, before anything is sent.
//!
//! [`load`] reads a file, checks its keys ([`keys`], docker's rules and messages) and
//! substitutes variables ([`interpolate`]); [`plan`] then converts it into the requests a
//! deploy sends ([`convert`] for services and networks, [`deploy`] for a service's `deploy:`
//! section, [`volumes`] for mounts). Both are pure, so a file that fails does so before any
//! object exists.

mod convert;
mod deploy;
mod file;
mod interpolate;
mod keys;
mod volumes;

use std::collections::HashMap;
use std::path::Path;

use bollard::models::{NetworkCreateRequest, ServiceSpec};
use serde_yaml_ng::Value;

pub use file::ComposeFile;

/// The label every object of a stack carries, whose value is the stack's name.
pub const NAMESPACE_LABEL: &str = "com.docker.stack.namespace";

/// The service label keeping the image the file names (the spec's may gain a digest).
pub const IMAGE_LABEL: &str = "com.docker.stack.image";

/// Why a compose file cannot be deployed.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// Not YAML, or a value of the wrong type; the message ends with the line and column.
    /// (Not a `source`: the message already holds it, and `{:#}` would print it twice.)
    #[error("invalid compose file: {0}")]
    Yaml(serde_yaml_ng::Error),
    /// Options docker refuses, each with its advice.
    #[error("Compose file contains unsupported options:\n\n{0}\n")]
    Forbidden(String),
    /// A key or version docker's schema does not allow.
    #[error("{0}")]
    Schema(String),
    /// A service whose values cannot be converted.
    #[error("service {service}: {reason}")]
    Service {
        /// The service's short name.
        service: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Networks that cannot be converted.
    #[error("{0}")]
    Networks(String),
    /// Services that cannot all be published as asked.
    #[error("{0}")]
    Ports(String),
}

impl From<serde_yaml_ng::Error> for ComposeError {
    fn from(error: serde_yaml_ng::Error) -> Self {
        Self::Yaml(error)
    }
}

/// A compose file read and checked, with the warnings docker would print for it.
#[derive(Debug)]
pub struct Loaded {
    /// The file's contents.
    pub file: ComposeFile,
    /// Messages for stderr, each a paragraph: options ignored or deprecated.
    pub warnings: Vec<String>,
}

/// What deploying a file to a stack takes, in order.
#[derive(Debug)]
pub struct Plan {
    /// The networks to create unless the stack has them already, sorted by name.
    pub networks: Vec<NetworkCreateRequest>,
    /// The external networks the services use, which must exist.
    pub external_networks: Vec<String>,
    /// The services to create or update, sorted by name (each spec holds its
    /// `<stack>_<service>` name).
    pub services: Vec<ServiceSpec>,
}

/// Reads the compose file `text`, refusing what docker refuses, with the variables `env`
/// holds substituted in its values (docker's client takes them from its environment).
pub fn load(text: &str, env: &HashMap<String, String>) -> Result<Loaded, ComposeError> {
    // Untyped first, so that `<<` merge keys are merged (as docker's YAML parser does), the
    // keys checked with docker's rules before serde meets them, and variables substituted
    // before values are typed.
    let parsed: Value = serde_yaml_ng::from_str(text)?;
    let mut document = parsed.clone();
    document.apply_merge()?;
    let warnings = keys::check(&document)?;
    let substituted = interpolate::interpolate(&mut document, env)?;
    let file: ComposeFile = if substituted || document != parsed {
        serde_yaml_ng::from_value(document)?
    } else {
        // Typed from the text, so that a value of the wrong type is reported where it is.
        serde_yaml_ng::from_str(text)?
    };
    if let Some(version) = &file.version {
        if version.split('.').next() != Some("3") {
            return Err(ComposeError::Schema(format!(
                "unsupported Compose file version: {version}"
            )));
        }
    }
    Ok(Loaded { file, warnings })
}

/// The networks and services of `file` deployed as the stack `stack`; relative bind mount
/// sources are read from `base`, the compose file's directory.
pub fn plan(stack: &str, file: &ComposeFile, base: &Path) -> Result<Plan, ComposeError> {
    let namespace = convert::Namespace::new(stack);
    let (networks, external_networks) =
        convert::networks(&namespace, file).map_err(ComposeError::Networks)?;
    let services = file
        .services
        .iter()
        .map(|(name, service)| {
            convert::service(&namespace, name, service, file, base).map_err(|reason| {
                ComposeError::Service {
                    service: name.clone(),
                    reason,
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let named = file.services.keys().map(String::as_str).zip(&services);
    convert::check_published_ports(named).map_err(ComposeError::Ports)?;
    Ok(Plan {
        networks,
        external_networks,
        services,
    })
}

#[cfg(test)]
mod tests;
