//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use column_notify_listener::{
    TlsVerification, DEFAULT_BATCH_SIZE, DEFAULT_BUFFER, DEFAULT_STREAM, DEFAULT_SUBJECT_PREFIX,
    DEFAULT_WINDOW,
};

/// Listen to pg_column_notify changes, inspect the watches of a database, and relay durable
/// events into NATS JetStream.
#[derive(Debug, Parser)]
#[command(name = "column-notify", version)]
pub struct Cli {
    /// The database to connect to, as psql takes it: a URI
    /// (postgres://user@host:5432/db?sslmode=verify-full), keyword/value pairs ("host=db
    /// service=orders"), or a database name. What it leaves out comes from the PG*
    /// environment variables, the service file, ~/.pgpass and libpq's defaults
    #[arg(
        long,
        short = 'd',
        visible_alias = "dbname",
        value_name = "CONNINFO",
        env = "DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// With TLS, check the server certificate and host name against the CA certificates of
    /// this PEM file, whatever sslmode says
    #[arg(long, value_name = "FILE", global = true)]
    pub tls_ca_file: Option<PathBuf>,

    /// With TLS, do not check the server certificate, whatever sslmode says (encryption
    /// only, like libpq's sslmode=require without a root certificate)
    #[arg(long, global = true, conflicts_with = "tls_ca_file")]
    pub tls_no_verify: bool,

    /// More on stderr: -v the connections, reconnections and replays (info), -vv debug,
    /// -vvv trace; RUST_LOG, when set, chooses instead
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// No state lines on stderr (connected, connection lost or back, interrupted); errors
    /// still go there
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// What to do
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The certificate check the flags ask for.
    pub fn tls(&self) -> TlsVerification {
        match (&self.tls_ca_file, self.tls_no_verify) {
            (_, true) => TlsVerification::NoVerification,
            (Some(file), false) => TlsVerification::RootCertificates(file.clone()),
            (None, false) => TlsVerification::ConnectionString,
        }
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print each notification on the channels as one JSON object per line on stdout
    /// ({"channel", "payload", "process_id"}; the payload as the JSON text it is, a string
    /// where it is not JSON).
    /// Connection changes go to stderr. Ctrl-C exits with status 0.
    ///
    /// With --consumer NAME (one channel, of a durable watch): first every event after the
    /// consumer's acknowledged position, then live ones, as {"channel", "event_id",
    /// "payload"} lines; what is printed is acknowledged once written and flushed (after each
    /// batch, and at exit). Delivery is at least once: after a crash or a kill, events printed
    /// but not yet acknowledged (at most one batch) are printed again by the next run.
    ///
    /// For WAL watches (delivery => 'wal'), --consumer NAME reads the consumer's replication
    /// slot (column_notify_<NAME>, made on first use; one or more channels) as
    /// {"channel", "position", "commit", "payload"} lines: where the message is in the WAL and
    /// where its transaction's commit ends. Each is acknowledged once printed; a transaction
    /// is confirmed to the server once all its lines are, and a new run resumes after the
    /// last confirmed one.
    Listen(ListenArgs),
    /// Drop the WAL consumer NAME: its replication slot, and the WAL the slot kept.
    DropConsumer(DropConsumerArgs),
    /// Show the watches of the database (the column_watches view) and how full the
    /// server's notification queue is.
    Watches(ShowArgs),
    /// Show the consumers of the database: each durable consumer's acknowledged position and
    /// how many events wait after it, and each WAL consumer's replication slot (whether a
    /// consumer is connected, the position it confirmed, the WAL the slot keeps).
    Consumers(ShowArgs),
    /// Show how full the server's NOTIFY queue is, the sessions idle in a transaction (a
    /// listener among them keeps the queue from being cleaned), and the durable channels'
    /// backlog.
    Status,
    /// Publish every event of durable CHANNELs into a NATS JetStream stream, exactly once and
    /// in event-id order per channel: to subject <prefix>.<channel>, with header
    /// Nats-Msg-Id: <channel>:<event_id> and the event's payload as the body. The consumer's
    /// position moves only past events JetStream acknowledged. Another relay with the same
    /// --consumer waits as a standby and takes over when this one ends. States go to stderr;
    /// SIGINT or SIGTERM exit with status 0 once the events in flight are acknowledged.
    ///
    /// CHANNELs of WAL watches (delivery => 'wal') are read from the consumer's replication
    /// slot instead, all of them in one stream, and published in commit order with header
    /// Nats-Msg-Id: <channel>:<commit>:<position>; what the slot sends again after a crash
    /// and the stream already holds is not published twice.
    Relay(RelayArgs),
}

/// The arguments of `relay`.
#[derive(Debug, Args)]
pub struct RelayArgs {
    /// Channels of durable watches, or of WAL watches, to relay (each becomes one subject
    /// token)
    #[arg(value_name = "CHANNEL", required = true)]
    pub channels: Vec<String>,

    /// The durable (or WAL) consumer the relay reads as (its position is the relay's
    /// progress)
    #[arg(long, value_name = "NAME", required = true)]
    pub consumer: String,

    /// The NATS server, e.g. nats://127.0.0.1:4222
    #[arg(long, value_name = "URL", env = "NATS_URL", required = true)]
    pub nats_url: String,

    /// The JetStream stream, made (file storage, subjects <prefix>.>) when missing
    #[arg(long, value_name = "NAME", default_value = DEFAULT_STREAM)]
    pub stream: String,

    /// The first tokens of every subject
    #[arg(long, value_name = "PREFIX", default_value = DEFAULT_SUBJECT_PREFIX)]
    pub subject_prefix: String,

    /// Most publishes of a channel awaiting JetStream's acknowledgement
    #[arg(long, value_name = "PUBLISHES", default_value_t = DEFAULT_WINDOW)]
    pub window: usize,

    /// Most events read from the log at once
    #[arg(long, value_name = "EVENTS", default_value_t = DEFAULT_BATCH_SIZE)]
    pub batch_size: usize,
}

/// The arguments of `drop-consumer`.
#[derive(Debug, Args)]
pub struct DropConsumerArgs {
    /// The WAL consumer to drop
    #[arg(value_name = "NAME")]
    pub consumer: String,
}

/// The arguments of `watches` and `consumers`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Print the rows as JSON (as PostgreSQL's json_agg writes them: an array of the
    /// watches; an object of the durable and the WAL consumers), and nothing else
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `listen`.
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Channels to listen to, exactly as sent (case-sensitive)
    #[arg(value_name = "CHANNEL", required = true)]
    pub channels: Vec<String>,

    /// Most notifications held in memory while stdout is slow
    #[arg(long, value_name = "EVENTS", default_value_t = DEFAULT_BUFFER, value_parser = positive)]
    pub buffer: usize,

    /// Read the durable watch's event log as this named consumer: replay what it has not
    /// acknowledged, then follow live events (at-least-once: duplicates after a crash)
    #[arg(long, value_name = "NAME", value_parser = non_empty)]
    pub consumer: Option<String>,

    /// With --consumer, the most events read (and held) at once; also the most printed
    /// again after a crash
    #[arg(long, value_name = "EVENTS", default_value_t = DEFAULT_BATCH_SIZE, requires = "consumer", value_parser = positive)]
    pub batch_size: usize,

    /// Print each payload exactly as received, one per line (a batch as one line), without
    /// the channel and the rest of the JSON line
    #[arg(long)]
    pub raw: bool,

    /// Exit (status 0) once N changes are printed; with --consumer, once they are
    /// acknowledged
    #[arg(long, value_name = "N", value_parser = positive)]
    pub count: Option<usize>,
}

/// A number of at least 1.
fn positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("it must be at least 1".to_owned()),
        Ok(number) => Ok(number),
        Err(error) => Err(error.to_string()),
    }
}

/// A name that is not empty.
fn non_empty(text: &str) -> Result<String, String> {
    if text.is_empty() {
        Err("it must not be empty".to_owned())
    } else {
        Ok(text.to_owned())
    }
}
