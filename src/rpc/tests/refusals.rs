//! Peers that must not get through: foreign CAs, foreign clusters, workers posing
//! as managers, and clients that do not speak TLS.

use rustls::version::{TLS12, TLS13};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::rpc::{RpcError, anonymous_client_config};

/// Connects with `config` and makes one call; with TLS 1.3 a refused client
/// certificate shows up only at the first call.
async fn connect_and_call(server: &TestServer, config: Arc<ClientConfig>) -> Result<Response> {
    let mut conn = server.connect(config).await?;
    conn.call(&Request::WhoAmI, TIMEOUT).await
}

#[tokio::test]
async fn client_refuses_a_server_of_another_ca() {
    let ours = Swarm::new();
    let theirs = Swarm::new();
    let server = TestServer::start(theirs.tls(Role::Manager).1).await;
    let err = server
        .connect(ours.tls(Role::Manager).1.client_config())
        .await
        .unwrap_err();
    // Every swarm CA is named CN=swarm-ca, so webpki finds our CA as the issuer by
    // name and reports the signature, not an unknown issuer.
    assert!(matches!(err, RpcError::Handshake { .. }), "{err}");
    assert!(err.to_string().contains("BadSignature"), "{err}");
    let anonymous = anonymous_client_config(ours.ca.cert_pem()).expect("config");
    let err = server.connect(anonymous).await.unwrap_err();
    assert!(err.to_string().contains("BadSignature"), "{err}");
    assert_eq!(server.calls(), 0);
}

#[tokio::test]
async fn client_refuses_a_server_of_another_cluster() {
    let swarm = Swarm::new();
    let foreign = swarm.node_in_cluster(&new_id(), Role::Manager, "other-cluster");
    let server_tls = Tls::new(&foreign, "other-cluster").expect("tls");
    let server = TestServer::start(Arc::new(server_tls)).await;
    let err = server
        .connect(swarm.tls(Role::Manager).1.client_config())
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Handshake { .. }), "{err}");
    assert!(err.to_string().contains("\"other-cluster\""), "{err}");
}

#[tokio::test]
async fn client_refuses_a_worker_posing_as_a_manager() {
    let swarm = Swarm::new();
    let server = TestServer::start(swarm.tls(Role::Worker).1).await;
    let err = server
        .connect(swarm.tls(Role::Manager).1.client_config())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("not valid for name \"swarm-manager\""),
        "{err}"
    );
}

#[tokio::test]
async fn server_refuses_a_client_certificate_of_another_ca() {
    let ours = Swarm::new();
    let theirs = Swarm::new();
    let server = TestServer::start(ours.tls(Role::Manager).1).await;
    // Trusts our CA and even names our cluster, but was issued by another CA.
    let forged = theirs.node_in_cluster(&new_id(), Role::Manager, &ours.cluster_id);
    for version in [&TLS13, &TLS12] {
        let config = raw_client_config(ours.ca.cert_pem(), &forged, &[version]);
        let err = connect_and_call(&server, config).await.unwrap_err();
        assert!(err.to_string().contains("alert"), "{version:?}: {err}");
    }
    assert_eq!(server.calls(), 0);
}

#[tokio::test]
async fn server_refuses_a_client_of_another_cluster() {
    let swarm = Swarm::new();
    let server = TestServer::start(swarm.tls(Role::Manager).1).await;
    let foreign = swarm.node_in_cluster(&new_id(), Role::Manager, "other-cluster");
    for version in [&TLS13, &TLS12] {
        let config = raw_client_config(swarm.ca.cert_pem(), &foreign, &[version]);
        let err = connect_and_call(&server, config).await.unwrap_err();
        assert!(err.to_string().contains("alert"), "{version:?}: {err}");
    }
    assert_eq!(server.calls(), 0);
    // Our own configuration refuses to be built for a foreign certificate at all.
    let err = Tls::new(&foreign, &swarm.cluster_id).unwrap_err();
    assert!(err.to_string().contains("other-cluster"), "{err}");
}

#[tokio::test]
async fn plaintext_clients_get_no_answer_and_others_are_still_served() {
    let swarm = Swarm::new();
    let server = TestServer::start(swarm.tls(Role::Manager).1).await;
    let garbage: [&[u8]; 2] = [
        b"GET / HTTP/1.1\r\nHost: swarm\r\n\r\n",
        b"\x00\x00\x00\x0b{\"WhoAmI\":0}",
    ];
    for bytes in garbage {
        let mut tcp = TcpStream::connect(server.addr).await.expect("tcp");
        tcp.write_all(bytes).await.expect("write");
        let mut reply = Vec::new();
        tokio::time::timeout(TIMEOUT, tcp.read_to_end(&mut reply))
            .await
            .expect("server closes the connection")
            .ok();
        // At most a TLS alert record (content type 21), never an answer.
        assert!(reply.is_empty() || reply[0] == 21, "{reply:?}");
    }
    let client = swarm.tls(Role::Manager).1;
    let answer = connect_and_call(&server, client.client_config()).await;
    assert!(
        matches!(answer, Ok(Response::You(Some(_), _))),
        "{answer:?}"
    );
    assert_eq!(server.calls(), 1);
}
