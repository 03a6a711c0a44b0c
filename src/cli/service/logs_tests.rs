use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use super::*;
use crate::cli::connect::Daemon;

const NODE: &str = "45ernil34fihpmu843pe37dvg";
const SERVICE: &str = "7i3pk3g4p8e756gxsuz5mweal";
const TASK: &str = "d54uewdpr7hyowa628m6iot0n";

/// One frame of docker's multiplexed stream: stream (1 stdout, 2 stderr), three zero bytes,
/// the length in big-endian, the payload.
fn frame(stream: u8, payload: &str) -> Vec<u8> {
    let mut frame = vec![stream, 0, 0, 0];
    frame.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(payload.as_bytes());
    frame
}

fn details() -> String {
    format!("{NODE_KEY}={NODE},{SERVICE_KEY}={SERVICE},{TASK_KEY}={TASK}")
}

/// A daemon on a unix socket in `dir` that answers each path (version prefix and query
/// left out) with a status and a body written in the chunks given, and records the
/// requests it gets.
fn fake_daemon(
    dir: &std::path::Path,
    routes: Vec<(String, u16, Vec<Vec<u8>>)>,
) -> (Daemon, Arc<Mutex<Vec<String>>>) {
    let path = dir.join("shoal.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&requests);
    tokio::spawn(async move {
        while let Ok((mut connection, _)) = listener.accept().await {
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0];
                if connection.read(&mut byte).await.unwrap_or(0) == 0 {
                    break;
                }
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).to_string();
            let target = head.split(' ').nth(1).unwrap_or_default().to_string();
            seen.lock().unwrap().push(target.clone());
            // "/services/web?x=y" or "/v1.41/services/web?x=y" -> "/services/web"
            let path = target.split('?').next().unwrap_or_default();
            let versioned = path
                .strip_prefix("/v")
                .and_then(|rest| rest.split_once('/'));
            let path = match versioned {
                Some((version, rest)) if version.contains('.') => {
                    &path[path.len() - rest.len() - 1..]
                }
                _ => path,
            };
            let (status, chunks) = routes
                .iter()
                .find(|(route, _, _)| route == path)
                .map_or((404, vec![b"{\"message\":\"not found\"}".to_vec()]), |r| {
                    (r.1, r.2.clone())
                });
            let response = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n\r\n");
            connection.write_all(response.as_bytes()).await.unwrap();
            for chunk in chunks {
                connection.write_all(&chunk).await.unwrap();
                connection.flush().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    });
    let daemon = Daemon::at(path.to_str().unwrap()).unwrap();
    (daemon, requests)
}

fn json(value: serde_json::Value) -> Vec<Vec<u8>> {
    vec![value.to_string().into_bytes()]
}

/// The routes of a daemon running service `web` (12 replicas) with one task in slot 3.
fn web_routes(log: Vec<Vec<u8>>) -> Vec<(String, u16, Vec<Vec<u8>>)> {
    let service = serde_json::json!({
        "ID": SERVICE,
        "Spec": {"Name": "web", "Mode": {"Replicated": {"Replicas": 12}},
                 "TaskTemplate": {"ContainerSpec": {"Image": "sleep"}}}
    });
    vec![
        ("/services/web".into(), 200, json(service.clone())),
        (format!("/services/{SERVICE}"), 200, json(service)),
        ("/services/web/logs".into(), 200, log),
        (
            format!("/tasks/{TASK}"),
            200,
            json(serde_json::json!({"ID": TASK, "Slot": 3})),
        ),
        (
            format!("/nodes/{NODE}"),
            200,
            json(serde_json::json!({"ID": NODE, "Description": {"Hostname": "h1"}})),
        ),
    ]
}

fn parse(line: &[&str]) -> LogsArgs {
    use clap::Parser as _;
    #[derive(clap::Parser)]
    struct Command {
        #[command(flatten)]
        args: LogsArgs,
    }
    let line = std::iter::once("logs").chain(line.iter().copied());
    Command::try_parse_from(line).unwrap().args
}

/// Runs `service logs` with `line` against `daemon`: stdout, stderr and the requests made.
async fn run(daemon: &Daemon, line: &[&str]) -> Result<(String, String)> {
    let docker = daemon.client()?;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    print_logs(&docker, &parse(line), &mut stdout, &mut stderr).await?;
    let text = |bytes| String::from_utf8(bytes).unwrap();
    Ok((text(stdout), text(stderr)))
}

#[tokio::test]
async fn the_stream_is_demultiplexed_and_each_line_prefixed_like_docker() {
    let dir = tempfile::tempdir().unwrap();
    let first = frame(1, &format!("{} hello\n", details()));
    let second = frame(2, &format!("{} oops\n", details()));
    // A frame split across writes, and a line without details, which stays as it came.
    let (head, tail) = first.split_at(5);
    let log = vec![
        head.to_vec(),
        tail.to_vec(),
        second,
        frame(1, "plain line\n"),
    ];
    let (daemon, requests) = fake_daemon(dir.path(), web_routes(log));
    let (stdout, stderr) = run(&daemon, &["web"]).await.unwrap();
    // Padded to the two digits of 12 replicas.
    assert_eq!(stdout, "web.3.d54uewdpr7hy@h1     | hello\nplain line\n");
    assert_eq!(stderr, "web.3.d54uewdpr7hy@h1     | oops\n");
    let requests = requests.lock().unwrap().clone();
    let logs = requests.iter().find(|r| r.contains("/logs")).unwrap();
    for part in [
        "stdout=true",
        "stderr=true",
        "follow=false",
        "tail=all",
        "details=true",
    ] {
        assert!(logs.contains(part), "{part} not in {logs}");
    }
    // The node, service and task were each looked up once, for both lines.
    assert_eq!(requests.iter().filter(|r| r.contains("/tasks/")).count(), 1);
}

#[tokio::test]
async fn timestamps_come_first_and_raw_lines_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let stamp = "2026-11-25T02:03:17.954785349Z";
    let log = vec![frame(1, &format!("{stamp} {} hello world\n", details()))];
    let (daemon, _) = fake_daemon(dir.path(), web_routes(log));
    let (stdout, _) = run(&daemon, &["-t", "--no-trunc", "web"]).await.unwrap();
    assert_eq!(
        stdout,
        format!("{stamp} web.3.{TASK}@h1     | hello world\n")
    );

    let raw = tempfile::tempdir().unwrap();
    let log = vec![frame(1, "as sent\n"), frame(2, "to stderr\n")];
    let (daemon, requests) = fake_daemon(raw.path(), web_routes(log));
    let (stdout, stderr) = run(&daemon, &["--raw", "-f", "-n", "5", "web"])
        .await
        .unwrap();
    assert_eq!(
        (stdout.as_str(), stderr.as_str()),
        ("as sent\n", "to stderr\n")
    );
    let requests = requests.lock().unwrap().clone();
    let logs = requests.iter().find(|r| r.contains("/logs")).unwrap();
    assert!(
        logs.contains("follow=true") && logs.contains("tail=5"),
        "{logs}"
    );
    assert!(!logs.contains("details"), "{logs}");
}

#[tokio::test]
async fn a_name_that_is_neither_service_nor_task_fails_as_docker_does() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, _) = fake_daemon(dir.path(), Vec::new());
    let error = run(&daemon, &["nope"]).await.unwrap_err();
    assert_eq!(error.to_string(), "no such task or service: nope");
}

#[test]
fn details_are_url_escaped_pairs() {
    let parsed = parse_details("a=1,b%3Dc=x+y%2Cz").unwrap();
    assert_eq!(parsed["a"], "1");
    assert_eq!(parsed["b=c"], "x y,z");
    assert_eq!(parse_details(""), None);
    assert_eq!(parse_details("novalue"), None);
    assert_eq!(parse_details("=x"), None);
    assert_eq!(parse_details("a=%zz"), None);
}

#[test]
fn lines_split_into_timestamp_context_and_message() {
    let payload = format!("{} two words\n", details());
    let line = split_line(payload.as_bytes(), false).unwrap();
    assert_eq!(line.timestamp, None);
    assert_eq!(line.message, b"two words\n");
    assert_eq!(line.context.task, TASK);
    assert_eq!(line.with_prefix("p"), b"p    | two words\n");
    // Missing a task ID, or the timestamp asked for: not a swarm task's line.
    assert_eq!(split_line(b"a=1 text", false), None);
    assert_eq!(split_line(payload.as_bytes(), true), None);
}
