//! `column-notify listen`: notifications as JSON lines, connection changes on stderr.

use std::io::{self, Write};

use column_notify_listener::{ConnectionEvent, Listener, Notification, RawEvent, TlsVerification};
use serde_json::{json, Value};

use crate::cli::ListenArgs;
use crate::{interrupted, Failure};

pub async fn run(url: &str, tls: TlsVerification, args: ListenArgs) -> Result<(), Failure> {
    let mut listener = Listener::builder(url)
        .channels(args.channels)
        .buffer(args.buffer)
        .tls(tls)
        .connect_raw()
        .await?;
    eprintln!(
        "column-notify: connected; listening on {}",
        listener.channels().join(", ")
    );
    let mut interrupt = std::pin::pin!(interrupted());
    loop {
        let event = tokio::select! {
            signal = &mut interrupt => {
                signal?;
                eprintln!("column-notify: interrupted; exiting");
                return Ok(());
            }
            event = listener.recv() => event,
        };
        match event {
            Some(RawEvent::Notification(notification)) => {
                if let Err(error) = print(&notification) {
                    if error.kind() == io::ErrorKind::BrokenPipe {
                        return Ok(());
                    }
                    return Err(Failure(format!("cannot write to stdout: {error}")));
                }
            }
            Some(RawEvent::Connection(event)) => eprintln!("column-notify: {}", describe(&event)),
            None => return Err(Failure("the listener stopped".to_string())),
        }
    }
}

fn print(notification: &Notification) -> io::Result<()> {
    let payload = serde_json::from_str(&notification.payload)
        .unwrap_or_else(|_| Value::String(notification.payload.clone()));
    let line = json!({
        "channel": notification.channel,
        "payload": payload,
        "process_id": notification.process_id,
    });
    writeln!(io::stdout().lock(), "{line}")
}

fn describe(event: &ConnectionEvent) -> String {
    match event {
        ConnectionEvent::Lost { error } => format!("connection lost ({error}); reconnecting"),
        ConnectionEvent::ReconnectFailed {
            attempt,
            error,
            retry_in,
        } => format!("reconnection attempt {attempt} failed ({error}); next in {retry_in:?}"),
        ConnectionEvent::Reconnected {
            may_have_missed,
            attempts,
            downtime,
        } => {
            let missed = if *may_have_missed {
                "; notifications sent meanwhile may have been missed"
            } else {
                ""
            };
            format!(
                "reconnected after {attempts} attempt(s), {downtime:.1?} without listening{missed}"
            )
        }
        other => format!("{other:?}"),
    }
}
