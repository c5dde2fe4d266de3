//! The bare receiver that `end-to-end` sets beside `column-notify listen`: a plain
//! tokio-postgres connection that LISTENs on one channel and prints each payload as it
//! comes, one line each, to stdout (a pipe); "listening" on stderr once LISTEN is active.
//!
//! Usage: print-notifications CHANNEL (DATABASE_URL names the server)

use std::future::poll_fn;
use std::io::{self, Write};

use tokio_postgres::{AsyncMessage, NoTls};

use column_notify_bench::{database_url, describe, fail};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let channel = std::env::args()
        .nth(1)
        .unwrap_or_else(|| fail("usage: print-notifications CHANNEL"));
    let (client, mut connection) = tokio_postgres::connect(&database_url(), NoTls)
        .await
        .unwrap_or_else(|error| fail(&format!("cannot connect: {}", describe(&error))));
    let listen = format!("LISTEN \"{}\"", channel.replace('"', "\"\""));
    let mut listening =
        tokio::spawn(async move { client.batch_execute(&listen).await.map(|()| client) });
    // Kept so that the connection stays open.
    let mut client = None;
    let mut stdout = io::stdout().lock();
    loop {
        tokio::select! {
            message = poll_fn(|cx| connection.poll_message(cx)) => match message {
                Some(Ok(AsyncMessage::Notification(notification))) => {
                    // One write per line, as `println!` to a pipe does.
                    if writeln!(stdout, "{}", notification.payload())
                        .and_then(|()| stdout.flush())
                        .is_err()
                    {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => fail(&format!("the connection failed: {}", describe(&error))),
                None => return,
            },
            answer = &mut listening, if client.is_none() => {
                let answer = answer.unwrap_or_else(|error| fail(&error.to_string()));
                client = Some(answer.unwrap_or_else(|error| fail(&describe(&error))));
                eprintln!("listening");
            }
        }
    }
}
