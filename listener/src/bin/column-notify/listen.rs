//! `column-notify listen`: notifications (or, with `--consumer`, the events of a durable
//! watch) as JSON lines, connection changes on stderr.

use std::future::Future;
use std::io::{self, Write};
use std::pin::Pin;

use column_notify_listener::{
    split_batch, ConnectionEvent, DurableConsumer, Listener, Notification, RawDurableEvent,
    RawEvent, TlsVerification,
};
use serde_json::{json, Value};

use crate::cli::ListenArgs;
use crate::{interrupted, Failure};

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
                for line in notification_lines(&notification) {
                    if !print(&line)? {
                        return Ok(());
                    }
                }
            }
            Some(RawEvent::Connection(event)) => eprintln!("column-notify: {}", describe(&event)),
            None => return Err(Failure("the listener stopped".to_string())),
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
        Failure(format!(
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
                let payload = serde_json::from_str(&event.payload)
                    .unwrap_or_else(|_| Value::String(event.payload.clone()));
                let line = json!({
                    "channel": consumer.channel(),
                    "event_id": event.event_id,
                    "payload": payload,
                });
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

/// A line per change: one for a notification, one per element for a batch (a payload that
/// is not JSON is shown as a string).
fn notification_lines(notification: &Notification) -> Vec<Value> {
    let payloads = match serde_json::from_str(&notification.payload) {
        Ok(payload) => split_batch(payload),
        Err(_) => vec![Value::String(notification.payload.clone())],
    };
    payloads
        .into_iter()
        .map(|payload| {
            json!({
                "channel": notification.channel,
                "payload": payload,
                "process_id": notification.process_id,
            })
        })
        .collect()
}

/// Writes one line and flushes it. False when stdout is closed (a broken pipe).
fn print(line: &Value) -> Result<bool, Failure> {
    let mut stdout = io::stdout().lock();
    let written = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
    match written {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(error) => Err(Failure(format!("cannot write to stdout: {error}"))),
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
        other => format!("{other:?}"),
    }
}
