//! Malformed and oversized frames, on the server and in the wire helpers, and what a
//! failed call does to a client connection.

use futures::SinkExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, duplex};
use tokio_util::bytes::Bytes;

use super::*;
use crate::rpc::wire::{self, ANONYMOUS_MAX_FRAME_LEN, MAX_FRAME_LEN};
use crate::rpc::{RpcError, anonymous_client_config};

/// Asserts the server closes `stream` (end of stream or a reset, not silence).
async fn assert_closed(mut stream: impl AsyncRead + Unpin) {
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(TIMEOUT, stream.read(&mut buf))
        .await
        .expect("server closes the connection");
    assert!(!matches!(read, Ok(n) if n > 0), "unexpected data: {read:?}");
}

/// A connection that is open before, and must keep working after, the abuse.
async fn bystander(server: &TestServer, swarm: &Swarm) -> Connection {
    let mut conn = server
        .connect(swarm.tls(Role::Worker).1.client_config())
        .await
        .expect("connect");
    let _: Response = conn.call(&Request::Add(1, 1), TIMEOUT).await.expect("call");
    conn
}

#[tokio::test]
async fn oversize_frame_closes_only_that_connection() {
    let swarm = Swarm::new();
    let server = TestServer::start(swarm.tls(Role::Manager).1).await;
    let mut other = bystander(&server, &swarm).await;
    let client_tls = swarm.tls(Role::Manager).1;

    let mut stream = server.raw_tls(client_tls.client_config()).await;
    let too_long = u32::try_from(MAX_FRAME_LEN + 1).expect("fits the length field");
    stream
        .write_all(&too_long.to_be_bytes())
        .await
        .expect("write");
    stream.flush().await.expect("flush");
    assert_closed(stream).await;

    let answer: Response = other
        .call(&Request::Add(2, 2), TIMEOUT)
        .await
        .expect("call");
    assert_eq!(answer, Response::Sum(4));
    assert_eq!(server.calls(), 2);
}

#[tokio::test]
async fn non_json_or_mistyped_frame_closes_only_that_connection() {
    let swarm = Swarm::new();
    let server = TestServer::start(swarm.tls(Role::Manager).1).await;
    let mut other = bystander(&server, &swarm).await;
    let client_tls = swarm.tls(Role::Manager).1;

    for frame in [&b"not json"[..], br#"{"Launch":"missiles"}"#] {
        let stream = server.raw_tls(client_tls.client_config()).await;
        let mut transport = wire::framed(stream);
        transport
            .send(Bytes::from_static(frame))
            .await
            .expect("send");
        assert_closed(transport.into_inner()).await;
    }

    let answer: Response = other
        .call(&Request::Add(2, 3), TIMEOUT)
        .await
        .expect("call");
    assert_eq!(answer, Response::Sum(5));
    assert_eq!(server.calls(), 2);
}

#[tokio::test]
async fn anonymous_clients_get_a_smaller_frame_limit() {
    let swarm = Swarm::new();
    let server = TestServer::start(swarm.tls(Role::Manager).1).await;
    let big = "x".repeat(2 * ANONYMOUS_MAX_FRAME_LEN);

    let anonymous = anonymous_client_config(swarm.ca.cert_pem()).expect("config");
    let mut conn = server.connect(anonymous).await.expect("connect");
    let err = conn
        .call::<_, Response>(&Request::Echo(big.clone()), TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RpcError::PeerClosed | RpcError::Io(_)),
        "{err}"
    );
    assert!(conn.is_broken());

    let member = swarm.tls(Role::Worker).1;
    let mut conn = server
        .connect(member.client_config())
        .await
        .expect("connect");
    let answer: Response = conn
        .call(&Request::Echo(big.clone()), TIMEOUT)
        .await
        .expect("call");
    assert_eq!(answer, Response::Echo(big));
}

#[tokio::test]
async fn failed_call_leaves_the_connection_broken() {
    let swarm = Swarm::new();
    let server = TestServer::start(swarm.tls(Role::Manager).1).await;
    let mut conn = server
        .connect(swarm.tls(Role::Manager).1.client_config())
        .await
        .expect("connect");
    let err = conn
        .call::<_, Response>(&Request::Sleep(500), Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::CallTimeout(_)), "{err}");
    assert_eq!(err.to_string(), "no response within 50ms");
    assert!(conn.is_broken());
    let err = conn
        .call::<_, Response>(&Request::Add(1, 1), TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Broken), "{err}");

    // A response of the wrong type breaks it too.
    let mut conn = server
        .connect(swarm.tls(Role::Manager).1.client_config())
        .await
        .expect("connect");
    let err = conn
        .call::<_, String>(&Request::Add(1, 1), TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::BadJson(_)), "{err}");
    assert!(conn.is_broken());
}

#[tokio::test]
async fn wire_reports_limits_bad_json_and_clean_close() {
    let (near, far) = duplex(1 << 16);
    let mut near = wire::framed(near);
    let mut far = wire::framed(far);
    near.codec_mut().set_max_frame_length(8);
    let err = wire::send(&mut near, "more than eight bytes")
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::FrameTooLarge { max: 8 }), "{err}");
    assert_eq!(err.to_string(), "frame larger than the 8-byte limit");

    wire::send(&mut near, &1u8).await.expect("small frame");
    let one: Option<u8> = wire::recv(&mut far).await.expect("recv");
    assert_eq!(one, Some(1));

    let mut raw = near.into_inner();
    raw.write_all(b"\x00\x00\x00\x03abc").await.expect("write");
    let err = wire::recv::<_, u8>(&mut far).await.unwrap_err();
    assert!(matches!(err, RpcError::BadJson(_)), "{err}");

    drop(raw);
    assert!(wire::recv::<_, u8>(&mut far).await.expect("eof").is_none());

    let (near, far) = duplex(1 << 16);
    let mut near = wire::framed(near);
    let mut far = wire::framed(far);
    far.codec_mut().set_max_frame_length(8);
    wire::send(&mut near, "more than eight bytes")
        .await
        .expect("send");
    let err = wire::recv::<_, String>(&mut far).await.unwrap_err();
    assert!(matches!(err, RpcError::FrameTooLarge { max: 8 }), "{err}");
}
