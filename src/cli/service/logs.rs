//! `shoal service logs`: a service's or a task's output, demultiplexed from docker's stream
//! format (stdout to stdout, stderr to stderr), each line after docker's prefix
//! `<service>.<slot>.<task>@<node>    | ` unless `--raw`.
//!
//! As with docker, the prefix comes from the log "details" the daemon sends before each
//! line when asked to: the IDs of the line's node, service and task, which are then looked
//! up once each. A line without them is printed as it came (docker fails on it instead).

use std::collections::HashMap;
use std::io::{self, Write};

use anyhow::{Result, bail};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as ApiError;
use bollard::query_parameters::{InspectServiceOptions, LogsOptions};
use futures::{Stream, StreamExt};

use super::{name, node_name};
use crate::cli::text::short_id;

/// The detail keys docker's daemon gives a swarm task's log lines.
const NODE_KEY: &str = "com.docker.swarm.node.id";
const SERVICE_KEY: &str = "com.docker.swarm.service.id";
const TASK_KEY: &str = "com.docker.swarm.task.id";

/// Flags and argument of `service logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Follow log output.
    #[arg(short, long)]
    follow: bool,
    /// Number of lines to show from the end of the logs.
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show timestamps.
    #[arg(short, long)]
    timestamps: bool,
    /// Do not truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Do not neatly format logs.
    #[arg(long)]
    raw: bool,
    /// The service (by ID, ID prefix or name) or the task (by ID).
    #[arg(value_name = "SERVICE|TASK")]
    target: String,
}

/// Runs `service logs`.
pub async fn logs(docker: &Docker, args: &LogsArgs) -> Result<()> {
    print_logs(docker, args, &mut io::stdout(), &mut io::stderr()).await
}

/// `service logs`, writing the lines to `stdout` and `stderr`.
async fn print_logs(
    docker: &Docker,
    args: &LogsArgs,
    stdout: &mut impl Write,
    stderr: &mut impl Write,
) -> Result<()> {
    let source = Source::find(docker, &args.target).await?;
    if source.tty && !args.raw {
        // A terminal's output is one stream, without the details the prefix needs.
        bail!("tty service logs only supported with --raw");
    }
    let options = LogsOptions {
        follow: args.follow,
        stdout: true,
        stderr: true,
        timestamps: args.timestamps,
        tail: args.tail.clone(),
        ..Default::default()
    };
    // Bollard's options cannot ask for the details, so the request's query (never empty:
    // bollard sends every option) is amended.
    let client = if args.raw {
        docker.clone()
    } else {
        docker.clone().with_request_modifier(|mut request| {
            let uri = format!("{}&details=true", request.uri());
            if let Ok(uri) = uri.parse() {
                *request.uri_mut() = uri;
            }
            request
        })
    };
    let frames = if source.is_service {
        client
            .service_logs(&args.target, Some(options))
            .boxed_local()
    } else {
        client.task_logs(&args.target, Some(options)).boxed_local()
    };
    let prefixes = (!args.raw).then(|| Prefixes::new(docker, source.width, args.no_trunc));
    copy(frames, prefixes, args.timestamps, stdout, stderr).await
}

/// What `service logs` reads from: a service, or else a task.
struct Source {
    is_service: bool,
    /// Whether its tasks run on a terminal, whose output is not multiplexed.
    tty: bool,
    /// Docker pads prefixes to the digits of the replica count (or of the task's slot).
    width: usize,
}

impl Source {
    /// The service `target` names or, when there is none, the task.
    async fn find(docker: &Docker, target: &str) -> Result<Self> {
        let not_found = |error: &ApiError| {
            matches!(
                error,
                ApiError::DockerResponseServerError {
                    status_code: 404,
                    ..
                }
            )
        };
        let options = None::<InspectServiceOptions>;
        let service_error = match docker.inspect_service(target, options).await {
            Ok(service) => {
                let spec = service.spec.unwrap_or_default();
                let replicas = spec
                    .mode
                    .and_then(|m| m.replicated)
                    .and_then(|r| r.replicas);
                let container = spec.task_template.and_then(|t| t.container_spec);
                return Ok(Self {
                    is_service: true,
                    tty: container.and_then(|c| c.tty).unwrap_or(false),
                    width: replicas.map_or(1, digits),
                });
            }
            Err(error) => error,
        };
        if !not_found(&service_error) {
            return Err(service_error.into());
        }
        match docker.inspect_task(target).await {
            Ok(task) => {
                let container = task.spec.and_then(|s| s.container_spec);
                Ok(Self {
                    is_service: false,
                    tty: container.and_then(|c| c.tty).unwrap_or(false),
                    width: digits(task.slot.unwrap_or(0)),
                })
            }
            Err(error) if not_found(&error) => bail!("no such task or service: {target}"),
            Err(error) => Err(error.into()),
        }
    }
}

/// How many characters `number` takes in decimal.
fn digits(number: i64) -> usize {
    number.to_string().len()
}

/// Writes each frame to the stream it came from, after its prefix when there are
/// `prefixes` to give.
async fn copy(
    mut frames: impl Stream<Item = Result<LogOutput, ApiError>> + Unpin,
    mut prefixes: Option<Prefixes<'_>>,
    timestamps: bool,
    stdout: &mut impl Write,
    stderr: &mut impl Write,
) -> Result<()> {
    while let Some(frame) = frames.next().await {
        let (out, payload): (&mut dyn Write, _) = match frame? {
            LogOutput::StdOut { message } | LogOutput::Console { message } => (stdout, message),
            LogOutput::StdErr { message } => (stderr, message),
            LogOutput::StdIn { .. } => continue,
        };
        let line = split_line(&payload, timestamps);
        let text = match (prefixes.as_mut(), line) {
            (Some(prefixes), Some(line)) => {
                let prefix = prefixes.prefix(&line.context).await?;
                line.with_prefix(&prefix)
            }
            _ => payload.to_vec(),
        };
        out.write_all(&text)?;
        out.flush()?;
    }
    Ok(())
}

/// Which task a line comes from, by the IDs in its details.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Context {
    node: String,
    service: String,
    task: String,
}

/// A line as docker's daemon sends it with details: `[<timestamp> ]<details> <message>`.
#[derive(Debug, PartialEq, Eq)]
struct Line<'a> {
    timestamp: Option<&'a [u8]>,
    context: Context,
    message: &'a [u8],
}

impl Line<'_> {
    /// The line as docker prints it: `[<timestamp> ]<prefix>    | <message>`.
    fn with_prefix(&self, prefix: &str) -> Vec<u8> {
        let mut text = Vec::new();
        if let Some(timestamp) = self.timestamp {
            text.extend_from_slice(timestamp);
            text.push(b' ');
        }
        text.extend_from_slice(prefix.as_bytes());
        text.extend_from_slice(b"    | ");
        text.extend_from_slice(self.message);
        text
    }
}

/// The parts of `payload`, or `None` when it does not carry a swarm task's details.
fn split_line(payload: &[u8], timestamps: bool) -> Option<Line<'_>> {
    let mut parts = payload.splitn(if timestamps { 3 } else { 2 }, |&b| b == b' ');
    let timestamp = if timestamps {
        Some(parts.next()?)
    } else {
        None
    };
    let details = parse_details(std::str::from_utf8(parts.next()?).ok()?)?;
    let message = parts.next()?;
    let id = |key: &str| details.get(key).cloned();
    let context = Context {
        node: id(NODE_KEY)?,
        service: id(SERVICE_KEY)?,
        task: id(TASK_KEY)?,
    };
    Some(Line {
        timestamp,
        context,
        message,
    })
}

/// Docker's log details: `key=value` pairs joined by commas, each side URL-query escaped.
fn parse_details(text: &str) -> Option<HashMap<String, String>> {
    if text.is_empty() {
        return None;
    }
    text.split(',')
        .map(|pair| {
            let (key, value) = pair.split_once('=').filter(|(key, _)| !key.is_empty())?;
            Some((query_unescape(key)?, query_unescape(value)?))
        })
        .collect()
}

/// Go's `url.QueryUnescape`: `+` is a space and `%XX` a byte; `None` for a bad escape.
fn query_unescape(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.bytes();
    while let Some(byte) = rest.next() {
        bytes.push(match byte {
            b'+' => b' ',
            b'%' => {
                let hex = [rest.next()?, rest.next()?];
                u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?
            }
            other => other,
        });
    }
    String::from_utf8(bytes).ok()
}

/// Docker's line prefixes, each looked up once.
struct Prefixes<'a> {
    docker: &'a Docker,
    width: usize,
    no_trunc: bool,
    known: HashMap<Context, String>,
}

impl<'a> Prefixes<'a> {
    fn new(docker: &'a Docker, width: usize, no_trunc: bool) -> Self {
        Self {
            docker,
            width,
            no_trunc,
            known: HashMap::new(),
        }
    }

    /// The prefix of lines from `context`. Like docker, a node or service that cannot be
    /// looked up is shown by its ID; a task that cannot be is an error.
    async fn prefix(&mut self, context: &Context) -> Result<String> {
        if let Some(prefix) = self.known.get(context) {
            return Ok(prefix.clone());
        }
        let node = match self.docker.inspect_node(&context.node).await {
            Ok(node) => node_name(&node),
            Err(_) => context.node.clone(),
        };
        let options = None::<InspectServiceOptions>;
        let service = match self.docker.inspect_service(&context.service, options).await {
            Ok(service) => name(&service).to_string(),
            Err(_) => context.service.clone(),
        };
        let task = self.docker.inspect_task(&context.task).await?;
        let task_id = task.id.as_deref().unwrap_or(&context.task);
        let task_id = if self.no_trunc {
            task_id
        } else {
            short_id(task_id)
        };
        let slot = task.slot.unwrap_or(0);
        let padding = " ".repeat(self.width.saturating_sub(digits(slot)));
        let prefix = format!("{service}.{slot}.{task_id}@{node}{padding}");
        self.known.insert(context.clone(), prefix.clone());
        Ok(prefix)
    }
}

#[cfg(test)]
#[path = "logs_tests.rs"]
mod tests;
