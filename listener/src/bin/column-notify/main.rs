//! `column-notify`: listen to pg_column_notify changes, inspect the watches, relay durable
//! events into NATS JetStream.

mod cli;
mod consumers;
mod failure;
mod listen;
mod logging;
mod output;
mod relay;
mod status;
mod table;
mod watches;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

use crate::cli::{Cli, Command};
use crate::failure::Failure;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    // One thread: the connection's task and the command's loop hand each event over without
    // waking another thread (which cost `listen` more than half its rate). The relay keeps
    // worker threads, for its database and NATS connections.
    let mut builder = match cli.command {
        Command::Relay(_) => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&Failure::new(format!("cannot start: {error}"))),
    };
    // A task, not the runtime's own future: a task that wakes another on its thread queues it,
    // where waking the runtime's own future writes to its event descriptor.
    let finished = runtime.block_on(async { tokio::spawn(run(cli)).await });
    match finished {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(failure)) => fail(&failure),
        Err(error) => match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => fail(&Failure::new(format!("stopped: {error}"))),
        },
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    logging::init(cli.verbose);
    output::set_quiet(cli.quiet);
    let tls = cli.tls();
    // Without one, libpq's sources decide (PG* variables, service, defaults), as for psql.
    let url = cli.database_url.unwrap_or_default();
    match cli.command {
        Command::Listen(args) => listen::run(&url, tls, args).await,
        Command::Watches(args) => watches::run(&url, &tls, args.json).await,
        Command::Consumers(args) => consumers::run(&url, &tls, args.json).await,
        Command::Status => status::run(&url, &tls).await,
        Command::Relay(args) => relay::run(&url, tls, args).await,
        Command::DropConsumer(args) => drop_consumer(&url, &tls, &args.consumer).await,
    }
}

/// `drop-consumer NAME`: the WAL consumer's slot goes.
async fn drop_consumer(
    url: &str,
    tls: &column_notify_listener::TlsVerification,
    consumer: &str,
) -> Result<(), Failure> {
    if column_notify_listener::WalConsumer::drop_consumer(url, consumer, tls).await? {
        output::line(&format!(
            "dropped WAL consumer {consumer} (slot {})",
            column_notify_listener::slot_name(consumer)?
        ))?;
        Ok(())
    } else {
        Err(Failure::new(format!("there is no WAL consumer {consumer}")))
    }
}

fn fail(failure: &Failure) -> ExitCode {
    eprintln!("column-notify: error: {failure}");
    ExitCode::from(failure.status())
}

/// Help and version go to stdout as clap writes them; a usage mistake is one line.
fn usage_error(error: &clap::Error) -> ExitCode {
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            print!("{error}");
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            eprint!("{error}");
            ExitCode::from(2)
        }
        _ => {
            let rendered = error.to_string();
            let lines: Vec<&str> = rendered
                .lines()
                .take_while(|line| !line.trim().is_empty())
                .map(str::trim)
                .collect();
            let joined = lines.join(" ");
            let message = joined.strip_prefix("error: ").unwrap_or(&joined);
            eprintln!("column-notify: error: {message} (see column-notify --help)");
            ExitCode::from(2)
        }
    }
}
