//! `column-notify listen`: notifications (or, with `--consumer`, the events of a durable
//! watch or the messages of WAL watches) as JSON lines, connection changes on stderr.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use column_notify_listener::{
    connect_client, skipped_before, split_batch_str, ConnectionEvent, DurableConsumer, Listener,
    Notification, RawDurableEvent, RawEvent, RawWalEvent, TlsVerification, WalConsumer,
};
use serde_json::value::RawValue;

use crate::cli::ListenArgs;
use crate::failure::Failure;
use crate::output;

type Interrupt = Pin<Box<dyn Future<Output = Result<(), Failure>> + Send>>;

/// What `listen` prints (JSON lines, or `--raw` payloads), and when it has printed enough
/// (`--count`).
struct Printer {
    raw: bool,
    left: Option<usize>,
    /// Lines queued and not yet written.
    queued: String,
}

/// How printing one line went.
#[derive(PartialEq, Eq)]
enum Printed {
    /// Printed; go on.
    More,
    /// Printed, and it was the last `--count` asked for.
    Enough,
    /// Not printed: stdout is closed.
    Closed,
}

/// Queued lines are written once they reach this size, if not before.
const MOST_QUEUED_BYTES: usize = 64 * 1024;

impl Printer {
    fn new(args: &ListenArgs) -> Self {
        Self {
            raw: args.raw,
            left: args.count,
            queued: String::new(),
        }
    }

    /// Prints `line`, or the payload as received with `--raw`, and flushes it.
    fn print(&mut self, line: impl FnOnce() -> String, payload: &str) -> Result<Printed, Failure> {
        let printed = self.queue(line, payload)?;
        match self.flush()? {
            true => Ok(printed),
            false => Ok(Printed::Closed),
        }
    }

    /// Queues `line` (or the payload, with `--raw`) to be written by [`Printer::flush`], or
    /// now if the queue is full.
    fn queue(&mut self, line: impl FnOnce() -> String, payload: &str) -> Result<Printed, Failure> {
        match self.raw {
            true => self.queued.push_str(payload),
            false => self.queued.push_str(&line()),
        }
        self.queued.push('\n');
        if self.queued.len() >= MOST_QUEUED_BYTES && !self.flush()? {
            return Ok(Printed::Closed);
        }
        match self.left.as_mut() {
            Some(left) => {
                *left -= 1;
                Ok(if *left == 0 {
                    Printed::Enough
                } else {
                    Printed::More
                })
            }
            None => Ok(Printed::More),
        }
    }

    /// Writes and flushes the queued lines. False when stdout is closed.
    fn flush(&mut self) -> Result<bool, Failure> {
        if self.queued.is_empty() {
            return Ok(true);
        }
        let written = output::write(&self.queued);
        self.queued.clear();
        written
    }
}

pub async fn run(url: &str, tls: TlsVerification, args: ListenArgs) -> Result<(), Failure> {
    if let Some(consumer) = args.consumer.clone() {
        return if delivers_through_wal(url, &tls, &args.channels).await? {
            wal(url, tls, args, consumer).await
        } else {
            durable(url, tls, args, consumer).await
        };
    }
    let mut printer = Printer::new(&args);
    let mut listener = Listener::builder(url)
        .channels(args.channels)
        .buffer(args.buffer)
        .tls(tls)
        .connect_raw()
        .await?;
    output::state(&format!(
        "column-notify: connected; listening on {}",
        listener.channels().join(", ")
    ));
    let mut interrupt: Interrupt = Box::pin(interrupted());
    while let Some(mut event) = until_interrupted(&mut interrupt, listener.recv()).await? {
        // What is waiting already is printed in one write; a line never waits for more.
        loop {
            match print_notification(&mut printer, event)? {
                Printed::More => {}
                Printed::Enough => {
                    printer.flush()?;
                    return Ok(());
                }
                Printed::Closed => return Ok(()),
            }
            match listener.try_recv() {
                Some(next) => event = Some(next),
                None => break,
            }
        }
        if !printer.flush()? {
            return Ok(());
        }
    }
    Ok(())
}

/// Queues the lines of what the listener yielded; reports a gap or a connection change on
/// stderr, after the lines before it.
fn print_notification(printer: &mut Printer, event: Option<RawEvent>) -> Result<Printed, Failure> {
    match event {
        Some(RawEvent::Notification(notification)) => {
            if let Some(count) = skipped_before(&notification.payload) {
                let gap = ConnectionEvent::NotificationsSkipped {
                    channel: notification.channel.clone(),
                    count,
                };
                if !printer.flush()? {
                    return Ok(Printed::Closed);
                }
                // A gap is never silenced, -q or not.
                eprintln!("column-notify: {}", describe(&gap));
            }
            let lines = if printer.raw {
                vec![String::new()]
            } else {
                notification_lines(&notification)
            };
            for line in lines {
                let printed = printer.queue(|| line, &notification.payload)?;
                if printed != Printed::More {
                    return Ok(printed);
                }
            }
            Ok(Printed::More)
        }
        Some(RawEvent::Connection(event)) => {
            if !printer.flush()? {
                return Ok(Printed::Closed);
            }
            output::state(&format!("column-notify: {}", describe(&event)));
            Ok(Printed::More)
        }
        None => Err(Failure::new("the listener stopped".to_string())),
    }
}

/// `listen CHANNEL --consumer NAME`: replay, then live events; each batch acknowledged once
/// printed and flushed.
async fn durable(
    url: &str,
    tls: TlsVerification,
    args: ListenArgs,
    name: String,
) -> Result<(), Failure> {
    let mut printer = Printer::new(&args);
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
    output::state(&format!(
        "column-notify: connected; listening on {} as consumer {}, replaying from its \
         acknowledged position",
        consumer.channel(),
        consumer.consumer()
    ));
    let mut interrupt: Interrupt = Box::pin(interrupted());
    while let Some(event) = until_interrupted(&mut interrupt, consumer.recv_raw()).await? {
        match event? {
            RawDurableEvent::Event(event) => {
                let line = || {
                    format!(
                        r#"{{"channel":{},"event_id":{},"payload":{}}}"#,
                        json_string(consumer.channel()),
                        event.event_id,
                        payload_json(&event.payload),
                    )
                };
                match printer.print(line, &event.payload)? {
                    // Not printed: left unacknowledged for the next run.
                    Printed::Closed => return Ok(()),
                    Printed::Enough => {
                        consumer.ack(event.event_id).await?;
                        return Ok(());
                    }
                    Printed::More => {}
                }
                if consumer.buffered_events() == 0 {
                    consumer.ack(event.event_id).await?;
                }
            }
            RawDurableEvent::Connection(event) => {
                output::state(&format!("column-notify: {}", describe(&event)));
            }
        }
    }
    // Interrupted: everything yielded was printed; acknowledge the rest of the batch.
    consumer.ack_delivered().await?;
    Ok(())
}

/// Whether the channels' watches are WAL watches (as the catalog says); a version of the
/// extension without WAL delivery has none.
async fn delivers_through_wal(
    url: &str,
    tls: &TlsVerification,
    channels: &[String],
) -> Result<bool, Failure> {
    let client = connect_client(url, tls).await?;
    let found = client
        .query_one(
            "SELECT pg_catalog.bool_or(w.delivery = 'wal') FROM column_notify.watches w
             WHERE w.channel = ANY($1)",
            &[&channels],
        )
        .await;
    match found {
        Ok(row) => Ok(row.get::<_, Option<bool>>(0).unwrap_or(false)),
        Err(error) if error.code().map(|code| code.code()) == Some("42703") => Ok(false),
        Err(error) => Err(column_notify_listener::Error::Query(error).into()),
    }
}

/// `listen CHANNEL... --consumer NAME` for WAL watches: what the consumer's slot holds
/// after its confirmed position, then live messages; each acknowledged once printed.
async fn wal(
    url: &str,
    tls: TlsVerification,
    args: ListenArgs,
    name: String,
) -> Result<(), Failure> {
    let mut printer = Printer::new(&args);
    let mut consumer = WalConsumer::builder(url, name)
        .channels(args.channels.iter().cloned())
        .tls_verification(tls)
        .connect()
        .await?;
    output::state(&format!(
        "column-notify: connected; reading {} as consumer {} (slot {}), from its confirmed position",
        args.channels.join(", "),
        consumer.consumer(),
        consumer.slot()
    ));
    let mut interrupt: Interrupt = Box::pin(interrupted());
    while let Some(event) = until_interrupted(&mut interrupt, consumer.recv_raw()).await? {
        match event? {
            RawWalEvent::Message(message) => {
                let line = || {
                    format!(
                        r#"{{"channel":{},"position":"{}","commit":"{}","payload":{}}}"#,
                        json_string(&message.channel),
                        message.position,
                        message.commit_end,
                        payload_json(&message.payload),
                    )
                };
                let printed = printer.print(line, &message.payload)?;
                if printed == Printed::Closed {
                    break;
                }
                consumer.ack(&message);
                if printed == Printed::Enough {
                    break;
                }
            }
            RawWalEvent::Connection(event) => {
                output::state(&format!("column-notify: {}", describe(&event)))
            }
        }
    }
    // The last confirmation goes with the stream's last status update.
    consumer.close().await;
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
            output::state("column-notify: interrupted; exiting");
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
    if json.bytes().any(|byte| byte == b'\n' || byte == b'\r') {
        Cow::Owned(json.replace(['\n', '\r'], " "))
    } else {
        Cow::Borrowed(json)
    }
}

/// A payload as the JSON text it is, on one line; a string where it is not JSON.
fn payload_json(payload: &str) -> Cow<'_, str> {
    match serde_json::from_str::<&RawValue>(payload) {
        Ok(json) => one_line(json.get()),
        Err(_) => Cow::Owned(json_string(payload)),
    }
}

/// `text` as a JSON string.
fn json_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
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
