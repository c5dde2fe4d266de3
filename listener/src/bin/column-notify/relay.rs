//! `column-notify relay`: durable events (or WAL watches' messages) into NATS JetStream, a
//! thin wrapper around the crate's [`Relay`]; its reports are the state lines on stderr.

use column_notify_listener::{Relay, TlsVerification};
use tokio::sync::mpsc;

use crate::cli::RelayArgs;
use crate::failure::Failure;
use crate::listen::interrupted;
use crate::output;

pub async fn run(url: &str, tls: TlsVerification, args: RelayArgs) -> Result<(), Failure> {
    let (reports, mut received) = mpsc::unbounded_channel();
    let printer = tokio::spawn(async move {
        while let Some(report) = received.recv().await {
            output::state(&format!("column-notify relay: {report}"));
        }
    });
    // Signals are caught from the start: an interrupt while connecting ends the command.
    let mut interrupt = Box::pin(interrupted());
    let relay = Relay::builder(url, args.consumer, args.channels, args.nats_url)
        .stream(args.stream)
        .subject_prefix(args.subject_prefix)
        .window(args.window)
        .batch_size(args.batch_size)
        .connection(|connection| connection.tls(tls))
        .reports(reports)
        .connect();
    let relay = tokio::select! {
        relay = relay => relay?,
        _ = interrupt.as_mut() => return Ok(()),
    };
    let relayed = relay
        .run(async move {
            // A failure to watch for signals leaves the relay running until killed.
            if interrupt.await.is_err() {
                std::future::pending::<()>().await;
            }
            output::state("column-notify relay: interrupted; acknowledging the events in flight");
        })
        .await;
    // The relay is gone with its report sender: the printer has printed everything.
    let _ = printer.await;
    relayed.map(drop).map_err(Failure::from)
}
