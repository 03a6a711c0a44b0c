//! Reaching the daemon: the `--host` address, the bollard client, and turning
//! failures into the messages docker prints.

use bollard::errors::Error as ApiError;
use bollard::{API_DEFAULT_VERSION, Docker};

/// How long one request may take; the daemon is local, so this only guards against a hung one.
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// A `--host` value shoal cannot use.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// A scheme other than `unix://`: the daemon only listens on a unix socket.
    #[error(
        "unsupported host {0}: the shoal daemon listens on a unix socket, use unix:///path/to/shoal.sock"
    )]
    Unsupported(String),
    /// `unix://` (or an empty string) with no socket path.
    #[error("invalid host {0:?}: no socket path")]
    NoPath(String),
}

/// The daemon's socket, from which each command opens its API client.
#[derive(Debug)]
pub struct Daemon {
    socket: String,
}

impl Daemon {
    /// The daemon at `host`: `unix:///path/to/socket`, or a bare socket path.
    pub fn at(host: &str) -> Result<Self, HostError> {
        let socket = match host.split_once("://") {
            Some(("unix", path)) => path,
            Some(_) => return Err(HostError::Unsupported(host.to_string())),
            None => host,
        };
        if socket.is_empty() {
            return Err(HostError::NoPath(host.to_string()));
        }
        Ok(Self {
            socket: socket.to_string(),
        })
    }

    /// The socket as a `unix://` URI, the way error messages name it.
    pub fn uri(&self) -> String {
        format!("unix://{}", self.socket)
    }

    /// An API client for the daemon. Opened per command rather than up front so that
    /// `version` can print its client half even when the daemon is down.
    pub fn client(&self) -> Result<Docker, ApiError> {
        Docker::connect_with_unix(&self.socket, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
    }

    /// The line docker would print for `error`: the daemon's own message for an API
    /// error, a hint when the socket cannot be reached, else the error chain.
    pub fn explain(&self, error: &anyhow::Error) -> String {
        match error.downcast_ref::<ApiError>() {
            Some(ApiError::DockerResponseServerError {
                status_code,
                message,
            }) if message.is_empty() => {
                format!("Error response from daemon: HTTP status {status_code}")
            }
            Some(ApiError::DockerResponseServerError { message, .. }) => {
                format!("Error response from daemon: {message}")
            }
            Some(api) if is_permission_denied(api) => format!(
                "permission denied while trying to connect to the shoal daemon socket at {}",
                self.uri()
            ),
            Some(api) if is_unreachable(api) => format!(
                "Cannot connect to the shoal daemon at {}. Is the daemon running?",
                self.uri()
            ),
            _ => format!("{error:#}"),
        }
    }
}

/// Whether the socket is missing or nothing accepts connections on it.
fn is_unreachable(error: &ApiError) -> bool {
    match error {
        ApiError::SocketNotFoundError(_) => true,
        ApiError::HyperLegacyError { err } => err.is_connect(),
        _ => false,
    }
}

/// Whether connecting failed because this user may not open the socket.
fn is_permission_denied(error: &ApiError) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::PermissionDenied;
        }
        cause = current.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_uri_and_bare_path_name_the_same_socket() {
        let from_uri = Daemon::at("unix:///run/shoal/shoal.sock").unwrap();
        let from_path = Daemon::at("/run/shoal/shoal.sock").unwrap();
        assert_eq!(from_uri.uri(), "unix:///run/shoal/shoal.sock");
        assert_eq!(from_path.uri(), "unix:///run/shoal/shoal.sock");
    }

    #[test]
    fn other_schemes_are_refused_with_the_reason() {
        let error = Daemon::at("tcp://127.0.0.1:2375").unwrap_err();
        assert_eq!(error, HostError::Unsupported("tcp://127.0.0.1:2375".into()));
        assert_eq!(
            error.to_string(),
            "unsupported host tcp://127.0.0.1:2375: the shoal daemon listens on a unix socket, \
             use unix:///path/to/shoal.sock"
        );
    }

    #[test]
    fn a_host_without_a_path_is_refused() {
        assert_eq!(
            Daemon::at("unix://").unwrap_err(),
            HostError::NoPath("unix://".into())
        );
        assert_eq!(Daemon::at("").unwrap_err(), HostError::NoPath("".into()));
    }

    #[test]
    fn daemon_errors_print_the_daemon_message() {
        let daemon = Daemon::at("/x.sock").unwrap();
        let error = anyhow::Error::from(ApiError::DockerResponseServerError {
            status_code: 404,
            message: "node abc not found".into(),
        });
        assert_eq!(
            daemon.explain(&error),
            "Error response from daemon: node abc not found"
        );
    }

    #[test]
    fn a_missing_socket_says_the_daemon_is_not_running() {
        let daemon = Daemon::at("/nonexistent/shoal.sock").unwrap();
        let error = anyhow::Error::from(daemon.client().unwrap_err());
        assert_eq!(
            daemon.explain(&error),
            "Cannot connect to the shoal daemon at unix:///nonexistent/shoal.sock. \
             Is the daemon running?"
        );
    }

    #[tokio::test]
    async fn a_socket_nobody_listens_on_says_the_daemon_is_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shoal.sock");
        // A bound but closed socket leaves the file behind with no listener.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let daemon = Daemon::at(path.to_str().unwrap()).unwrap();
        let error = daemon.client().unwrap().ping().await.unwrap_err();
        assert_eq!(
            daemon.explain(&error.into()),
            format!(
                "Cannot connect to the shoal daemon at unix://{}. Is the daemon running?",
                path.display()
            )
        );
    }
}
