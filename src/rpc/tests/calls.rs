//! Successful exchanges: who gets served, with which identity, and what changes
//! when credentials rotate.

use std::time::{Duration, Instant};

use rustls::version::TLS12;

use super::*;
use crate::rpc::{RpcError, anonymous_client_config, bootstrap_client_config};

#[tokio::test]
async fn manager_gets_typed_answers_in_order_and_is_identified() {
    let swarm = Swarm::new();
    let (server_id, server_tls) = swarm.tls(Role::Manager);
    let (client_id, client_tls) = swarm.tls(Role::Manager);
    let server = TestServer::start(server_tls).await;

    let mut conn = server
        .connect(client_tls.client_config())
        .await
        .expect("connect");
    let seen = conn.peer_identity().expect("server identity");
    assert_eq!(seen.node_id, server_id);
    assert_eq!(seen.role, Role::Manager);
    assert_eq!(seen.cluster_id, swarm.cluster_id);

    let sum: Response = conn.call(&Request::Add(2, 40), TIMEOUT).await.expect("add");
    assert_eq!(sum, Response::Sum(42));
    for i in 0..20 {
        let text = format!("message {i}");
        let echo: Response = conn
            .call(&Request::Echo(text.clone()), TIMEOUT)
            .await
            .expect("echo");
        assert_eq!(echo, Response::Echo(text));
    }
    let me: Response = conn.call(&Request::WhoAmI, TIMEOUT).await.expect("whoami");
    assert_eq!(
        me,
        Response::You(Some(client_id), Some("swarm-manager".into()))
    );
    assert!(!conn.is_broken());
    assert_eq!(server.calls(), 22);
}

#[tokio::test]
async fn worker_is_identified_as_worker() {
    let swarm = Swarm::new();
    let server = TestServer::start(swarm.tls(Role::Manager).1).await;
    let (worker_id, worker_tls) = swarm.tls(Role::Worker);
    let mut conn = server
        .connect(worker_tls.client_config())
        .await
        .expect("connect");
    let me: Response = conn.call(&Request::WhoAmI, TIMEOUT).await.expect("whoami");
    assert_eq!(
        me,
        Response::You(Some(worker_id), Some("swarm-worker".into()))
    );
}

#[tokio::test]
async fn client_without_certificate_is_served_anonymously() {
    let swarm = Swarm::new();
    let (server_id, server_tls) = swarm.tls(Role::Manager);
    let server = TestServer::start(server_tls).await;
    let config = anonymous_client_config(swarm.ca.cert_pem()).expect("config");
    let mut conn = server.connect(config).await.expect("connect");
    assert_eq!(conn.peer_identity().expect("server").node_id, server_id);
    let me: Response = conn.call(&Request::WhoAmI, TIMEOUT).await.expect("whoami");
    assert_eq!(me, Response::You(None, None));
}

#[tokio::test]
async fn bootstrap_config_reaches_a_server_of_an_unknown_ca() {
    let swarm = Swarm::new();
    let (server_id, server_tls) = swarm.tls(Role::Manager);
    let server = TestServer::start(server_tls).await;
    let mut conn = server
        .connect(bootstrap_client_config().expect("config"))
        .await
        .expect("connect");
    // Unverified, but what the server presented.
    assert_eq!(conn.peer_identity().expect("server").node_id, server_id);
    let me: Response = conn.call(&Request::WhoAmI, TIMEOUT).await.expect("whoami");
    assert_eq!(me, Response::You(None, None));
}

#[tokio::test]
async fn node_certificates_work_over_tls12() {
    let swarm = Swarm::new();
    let server = TestServer::start(swarm.tls(Role::Manager).1).await;
    let (client_id, creds) = swarm.node(Role::Worker);
    let config = raw_client_config(swarm.ca.cert_pem(), &creds, &[&TLS12]);
    let mut conn = server.connect(config).await.expect("connect");
    let me: Response = conn.call(&Request::WhoAmI, TIMEOUT).await.expect("whoami");
    assert_eq!(
        me,
        Response::You(Some(client_id), Some("swarm-worker".into()))
    );
}

#[tokio::test]
async fn updated_credentials_apply_to_the_next_connection() {
    let swarm = Swarm::new();
    let (old_server_id, server_tls) = swarm.tls(Role::Manager);
    let (old_client_id, client_tls) = swarm.tls(Role::Manager);
    let server = TestServer::start(server_tls.clone()).await;
    let mut before = server
        .connect(client_tls.client_config())
        .await
        .expect("connect");

    let (new_server_id, new_server_creds) = swarm.node(Role::Manager);
    let (new_client_id, new_client_creds) = swarm.node(Role::Manager);
    server_tls.update(&new_server_creds).expect("update server");
    client_tls.update(&new_client_creds).expect("update client");

    // The established connection keeps the identities it was made with.
    assert_eq!(before.peer_identity().expect("id").node_id, old_server_id);
    let me: Response = before
        .call(&Request::WhoAmI, TIMEOUT)
        .await
        .expect("old conn");
    assert_eq!(
        me,
        Response::You(Some(old_client_id), Some("swarm-manager".into()))
    );

    let mut after = server
        .connect(client_tls.client_config())
        .await
        .expect("connect");
    assert_eq!(after.peer_identity().expect("id").node_id, new_server_id);
    let me: Response = after
        .call(&Request::WhoAmI, TIMEOUT)
        .await
        .expect("new conn");
    assert_eq!(
        me,
        Response::You(Some(new_client_id.clone()), Some("swarm-manager".into()))
    );

    // Credentials of another cluster are refused and the current ones stay.
    let foreign = swarm.node_in_cluster(&new_id(), Role::Manager, "other-cluster");
    let err = client_tls.update(&foreign).unwrap_err();
    assert!(matches!(err, RpcError::Credentials(_)), "{err}");
    let mut again = server
        .connect(client_tls.client_config())
        .await
        .expect("connect");
    let me: Response = again.call(&Request::WhoAmI, TIMEOUT).await.expect("call");
    assert_eq!(
        me,
        Response::You(Some(new_client_id), Some("swarm-manager".into()))
    );
}

#[tokio::test]
async fn a_slow_request_does_not_hold_up_other_connections() {
    let swarm = Swarm::new();
    let server = TestServer::start(swarm.tls(Role::Manager).1).await;
    let client_tls = swarm.tls(Role::Manager).1;
    let mut slow = server
        .connect(client_tls.client_config())
        .await
        .expect("connect");
    let mut fast = server
        .connect(client_tls.client_config())
        .await
        .expect("connect");

    let started = Instant::now();
    let slow_call = slow.call::<_, Response>(&Request::Sleep(1000), TIMEOUT);
    let fast_call = async {
        let answer: Response = fast.call(&Request::Add(1, 1), TIMEOUT).await.expect("fast");
        (answer, started.elapsed())
    };
    let (slow_answer, (fast_answer, fast_elapsed)) = tokio::join!(slow_call, fast_call);
    assert_eq!(slow_answer.expect("slow"), Response::Slept);
    assert_eq!(fast_answer, Response::Sum(2));
    assert!(
        fast_elapsed < Duration::from_millis(900),
        "{fast_elapsed:?}"
    );
}

#[tokio::test]
async fn shutdown_stops_the_server_and_closes_its_connections() {
    let swarm = Swarm::new();
    let server = TestServer::start(swarm.tls(Role::Manager).1).await;
    let client_tls = swarm.tls(Role::Manager).1;
    let mut conn = server
        .connect(client_tls.client_config())
        .await
        .expect("connect");
    let _: Response = conn.call(&Request::Add(1, 2), TIMEOUT).await.expect("call");

    let addr = server.stop().await;
    let err = conn
        .call::<_, Response>(&Request::Add(1, 2), TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RpcError::PeerClosed | RpcError::Io(_)),
        "{err}"
    );
    let err = Connection::connect(addr, client_tls.client_config(), TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("refused"), "{err}");
}
