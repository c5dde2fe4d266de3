//! `column-notify listen`: notifications (or, with `--consumer`, the events of a durable
//! watch) as JSON lines, connection changes on stderr.

use std::borrow::Cow;
use std::future::Future;
use std::io::{self, Write};
use std::pin::Pin;

use column_notify_listener::{
    skipped_before, split_batch_str, ConnectionEvent, DurableConsumer, Listener, Notification,
    RawDurableEvent, RawEvent, TlsVerification,
};
use serde_json::value::RawValue;

use crate::cli::ListenArgs;
use crate::failure::Failure;

type Interrupt = Pin<Box<dyn Future<Output = Result<(), Failure>> + Send>>;

pub async fn run(url: &str, tls: TlsVerification, args: ListenArgs) -> Result<(), Failure> {
    if let Some(consumer) = args.consumer.clone() {
        return durable(url, tls, args, consumer).await;
    }
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
    let mut interrupt: Interrupt = Box::pin(interrupted());
    while let Some(event) = until_interrupted(&mut interrupt, listener.recv()).await? {
        match event {
            Some(RawEvent::Notification(notification)) => {
                if let Some(count) = skipped_before(&notification.payload) {
                    let gap = ConnectionEvent::NotificationsSkipped {
                        channel: notification.channel.clone(),
                        count,
                    };
                    eprintln!("column-notify: {}", describe(&gap));
                }
                for line in notification_lines(&notification) {
                    if !print(&line)? {
                        return Ok(());
                    }
                }
            }
            Some(RawEvent::Connection(event)) => eprintln!("column-notify: {}", describe(&event)),
            None => return Err(Failure::new("the listener stopped".to_string())),
        }
    }
    Ok(())
}

/// `listen CHANNEL --consumer NAME`: replay, then live events; each batch acknowledged once
/// printed and flushed.
async fn durable(
    url: &str,
    tls: TlsVerification,
    args: ListenArgs,
    name: String,
) -> Result<(), Failure> {
    let [channel] = <[String; 1]>::try_from(args.channels).map_err(|channels| {
        Failure::new(format!(
            "--consumer reads the event log of one channel, not {}",
            channels.len()
        ))
    })?;
    let mut consumer = DurableConsumer::builder(url, name, channel)
        .batch_size(args.batch_size)
        .connection(|connection| connection.tls(tls))
        .connect()
        .await?;
    eprintln!(
        "column-notify: connected; listening on {} as consumer {}, replaying from its \
         acknowledged position",
        consumer.channel(),
        consumer.consumer()
    );
    let mut interrupt: Interrupt = Box::pin(interrupted());
    while let Some(event) = until_interrupted(&mut interrupt, consumer.recv_raw()).await? {
        match event? {
            RawDurableEvent::Event(event) => {
                let payload = match serde_json::from_str::<&RawValue>(&event.payload) {
                    Ok(payload) => one_line(payload.get()),
                    Err(_) => Cow::Owned(json_string(&event.payload)),
                };
                let line = format!(
                    r#"{{"channel":{},"event_id":{},"payload":{payload}}}"#,
                    json_string(consumer.channel()),
                    event.event_id,
                );
                if !print(&line)? {
                    // Not printed: left unacknowledged for the next run.
                    return Ok(());
                }
                if consumer.buffered() == 0 {
                    consumer.ack(event.event_id).await?;
                }
            }
            RawDurableEvent::Connection(event) => {
                eprintln!("column-notify: {}", describe(&event));
            }
        }
    }
    // Interrupted: everything yielded was printed; acknowledge the rest of the batch.
    consumer.ack_delivered().await?;
    Ok(())
}

/// The next item of `next`, or `None` once SIGINT or SIGTERM came.
async fn until_interrupted<F: Future>(
    interrupt: &mut Interrupt,
    next: F,
) -> Result<Option<F::Output>, Failure> {
    tokio::select! {
        signal = interrupt.as_mut() => {
            signal?;
            eprintln!("column-notify: interrupted; exiting");
            Ok(None)
        }
        item = next => Ok(Some(item)),
    }
}

/// A line per change: one for a notification, one per element for a batch (as
/// [`split_batch_str`] tells them apart). Each payload is printed as the JSON text it is in
/// the notification, so numbers, key order and escapes are kept byte for byte; a payload
/// that is not JSON is shown as a string.
fn notification_lines(notification: &Notification) -> Vec<String> {
    let channel = json_string(&notification.channel);
    let payloads: Vec<Cow<str>> = match split_batch_str(&notification.payload) {
        Ok(payloads) => payloads.into_iter().map(one_line).collect(),
        Err(_) => vec![Cow::Owned(json_string(&notification.payload))],
    };
    payloads
        .into_iter()
        .map(|payload| {
            format!(
                r#"{{"channel":{channel},"payload":{payload},"process_id":{}}}"#,
                notification.process_id
            )
        })
        .collect()
}

/// A JSON text on one line: its line breaks, which JSON allows only between tokens (a string
/// writes them escaped), become spaces.
fn one_line(json: &str) -> Cow<'_, str> {
    if json.contains(['\n', '\r']) {
        Cow::Owned(json.replace(['\n', '\r'], " "))
    } else {
        Cow::Borrowed(json)
    }
}

/// `text` as a JSON string.
fn json_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

/// Writes one line and flushes it. False when stdout is closed (a broken pipe).
fn print(line: &str) -> Result<bool, Failure> {
    let mut stdout = io::stdout().lock();
    let written = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
    match written {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(error) => Err(Failure::new(format!("cannot write to stdout: {error}"))),
    }
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
                "; events committed meanwhile are read from the event log"
            };
            format!(
                "reconnected after {attempts} attempt(s), {downtime:.1?} without listening{missed}"
            )
        }
        ConnectionEvent::NotificationsSkipped { channel, count } => format!(
            "the server held back {count} notification(s) on {channel} (its NOTIFY queue was \
             nearly full): they were missed"
        ),
        other => format!("{other:?}"),
    }
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM.
pub async fn interrupted() -> Result<(), Failure> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => Ok(result?),
        _ = terminate.recv() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(payload: &str) -> Vec<String> {
        notification_lines(&Notification {
            channel: "a \"b\"".into(),
            payload: payload.into(),
            process_id: 7,
        })
    }

    #[test]
    fn payloads_are_printed_as_sent() {
        let payload =
            r#"{"id":1,"new":{"z":12345678901234567890.123456789,"a":1E400,"s":"\u00e9"}}"#;
        assert_eq!(
            lines(payload),
            [format!(
                r#"{{"channel":"a \"b\"","payload":{payload},"process_id":7}}"#
            )]
        );
    }

    #[test]
    fn a_batch_is_a_line_per_change_and_nothing_else_is_split() {
        assert_eq!(
            lines(r#"{"changes": [{"id": 1.0}, {"id":2}]}"#),
            [
                r#"{"channel":"a \"b\"","payload":{"id": 1.0},"process_id":7}"#,
                r#"{"channel":"a \"b\"","payload":{"id":2},"process_id":7}"#,
            ]
        );
        assert_eq!(
            lines(r#"{"id":1,"changes":[{"id":2}]}"#),
            [r#"{"channel":"a \"b\"","payload":{"id":1,"changes":[{"id":2}]},"process_id":7}"#]
        );
    }

    #[test]
    fn every_line_is_one_line_of_json() {
        assert_eq!(
            lines("\r\n{\"id\":\r\n1}\n"),
            [r#"{"channel":"a \"b\"","payload":{"id":  1},"process_id":7}"#]
        );
        assert_eq!(
            lines("not\njson"),
            [r#"{"channel":"a \"b\"","payload":"not\njson","process_id":7}"#]
        );
    }
}
