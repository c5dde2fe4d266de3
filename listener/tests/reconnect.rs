//! A killed backend, and a connection that goes silent: the gap is reported, the
//! listener reconnects and receives what is committed afterwards.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use column_notify_listener::tokio_postgres::Config;
use column_notify_listener::HealthCheck;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn terminated_backend_is_reported_and_reconnected() {
    let channel = unique("terminate");
    let name = unique("app");
    let (mut listener, sender) =
        reconnecting_listener(url_named(&name), &channel, HealthCheck::default()).await;

    let terminated = sender
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&name],
        )
        .await
        .unwrap();
    assert_eq!(terminated.len(), 1, "exactly the listener's backend");
    assert!(terminated[0].get::<_, bool>(0));

    expect_gap(&mut listener, Duration::from_secs(10)).await;
    round_trip(&mut listener, &sender, &channel, 2..=4).await;
}

/// A TCP relay to the server that can go silent: after `freeze`, the connections it
/// carries neither close nor pass a byte, like a cut network. New connections pass.
struct Relay {
    port: u16,
    generation: Arc<AtomicU64>,
}

impl Relay {
    async fn start(upstream: (String, u16)) -> Relay {
        let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = socket.local_addr().unwrap().port();
        let generation = Arc::new(AtomicU64::new(0));
        let current = Arc::clone(&generation);
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = socket.accept().await else {
                    return;
                };
                let Ok(server) = TcpStream::connect((upstream.0.as_str(), upstream.1)).await else {
                    continue;
                };
                let born = current.load(Ordering::SeqCst);
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                for (from, to) in [
                    (
                        Box::new(client_read) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                        Box::new(server_write) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
                    ),
                    (Box::new(server_read), Box::new(client_write)),
                ] {
                    tokio::spawn(pass(from, to, born, Arc::clone(&current)));
                }
            }
        });
        Relay { port, generation }
    }

    fn freeze(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

async fn pass(
    mut from: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    mut to: Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
    born: u64,
    generation: Arc<AtomicU64>,
) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        if generation.load(Ordering::SeqCst) != born {
            // Silent from now on: hold both ends open, pass nothing.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn silent_connection_is_detected_by_the_health_check() {
    let config: Config = server_url().parse().unwrap();
    let host = match &config.get_hosts()[0] {
        column_notify_listener::tokio_postgres::config::Host::Tcp(host) => host.clone(),
        other => panic!("the test needs a TCP DATABASE_URL, not {other:?}"),
    };
    let relay = Relay::start((host, config.get_ports()[0])).await;
    let url = format!(
        "postgres://{}@127.0.0.1:{}/{}",
        config.get_user().unwrap(),
        relay.port,
        config.get_dbname().unwrap()
    );
    let channel = unique("silent");
    let quick = HealthCheck::new(Duration::from_millis(300), Duration::from_millis(300));
    let (mut listener, sender) = reconnecting_listener(url, &channel, quick).await;

    relay.freeze();
    // Sent into the silent connection: never delivered, which is what the gap reports.
    notify(&sender, &channel, &change_payload(2)).await;
    expect_gap(&mut listener, Duration::from_secs(5)).await;
    round_trip(&mut listener, &sender, &channel, 3..=3).await;
}
