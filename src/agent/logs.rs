//! The node side of `service logs`: takes the leader's log subscriptions and sends back the
//! output of this node's tasks.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::SelectAll;

use crate::exec::{Executor, LogOptions, LogStream};
use crate::rpc::proto::{LogLine, LogSubscription, Request, Response};
use crate::rpc::{Connection, Tls};

/// How long a subscriptions poll may wait for its answer (the manager answers within 20 s).
const POLL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long sending one batch may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines per message.
const BATCH: usize = 500;

/// Serves the leader's log subscriptions for as long as it answers; returns why it stopped.
pub async fn serve_subscriptions(
    addr: &str,
    tls: &Arc<Tls>,
    executor: &Arc<dyn Executor>,
) -> String {
    let mut connection = match Connection::connect(addr, tls.client_config(), POLL_TIMEOUT).await {
        Ok(connection) => connection,
        Err(e) => return e.to_string(),
    };
    loop {
        match connection
            .call::<Request, Response>(&Request::LogSubscriptions, POLL_TIMEOUT)
            .await
        {
            Ok(Response::LogSubscriptions(subscriptions)) => {
                for subscription in subscriptions {
                    let (addr, tls, executor) = (addr.to_string(), tls.clone(), executor.clone());
                    tokio::spawn(async move {
                        if let Err(e) = publish(&addr, &tls, executor.as_ref(), subscription).await
                        {
                            tracing::debug!("log subscription ended: {e}");
                        }
                    });
                }
            }
            Ok(other) => return format!("unexpected answer {other:?}"),
            Err(e) => return e.to_string(),
        }
    }
}

/// Sends one subscription's lines, then says it is done (or stops when the subscriber left).
async fn publish(
    addr: &str,
    tls: &Tls,
    executor: &dyn Executor,
    subscription: LogSubscription,
) -> anyhow::Result<()> {
    let mut connection = Connection::connect(addr, tls.client_config(), SEND_TIMEOUT).await?;
    let since = subscription
        .since
        .as_deref()
        .and_then(|s| humantime::parse_rfc3339(s).ok());
    let options = LogOptions {
        tail: subscription.tail,
        since,
    };
    if subscription.follow {
        let mut streams = SelectAll::new();
        for task_id in &subscription.task_ids {
            let Ok(lines) = executor.follow_logs(task_id, options.clone()).await else {
                continue;
            };
            let task_id = task_id.clone();
            streams.push(
                futures::stream::unfold(lines, |mut lines| async move {
                    Some((lines.recv().await?, lines))
                })
                .map(move |line| convert(&task_id, line))
                .boxed(),
            );
        }
        while let Some(first) = streams.next().await {
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match futures::FutureExt::now_or_never(streams.next()) {
                    Some(Some(line)) => batch.push(line),
                    _ => break,
                }
            }
            send(&mut connection, subscription.id, batch, false).await?;
        }
    } else {
        for task_id in &subscription.task_ids {
            let Ok(lines) = executor.logs(task_id, &options).await else {
                continue;
            };
            let lines: Vec<LogLine> = lines
                .into_iter()
                .map(|line| convert(task_id, line))
                .collect();
            for chunk in lines.chunks(BATCH) {
                send(&mut connection, subscription.id, chunk.to_vec(), false).await?;
            }
        }
    }
    send(&mut connection, subscription.id, Vec::new(), true).await
}

async fn send(
    connection: &mut Connection,
    subscription: u64,
    lines: Vec<LogLine>,
    done: bool,
) -> anyhow::Result<()> {
    let request = Request::PublishLogs {
        subscription,
        lines,
        done,
    };
    match connection
        .call::<Request, Response>(&request, SEND_TIMEOUT)
        .await?
    {
        Response::Done => Ok(()),
        other => anyhow::bail!("lines not taken: {other:?}"),
    }
}

fn convert(task_id: &str, line: crate::exec::LogLine) -> LogLine {
    LogLine {
        task_id: task_id.to_string(),
        time: crate::store::objects::timestamp(line.time),
        stderr: line.stream == LogStream::Stderr,
        line: line.line,
    }
}
