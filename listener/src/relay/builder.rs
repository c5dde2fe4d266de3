//! How a relay is made and run: [`RelayBuilder`] checks the settings and the setup (each
//! channel has a durable watch, the NATS server has JetStream, the stream is there or is
//! made), then [`Relay::run`] waits for the consumer's lock and relays every channel until
//! told to stop.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::channel::ChannelRelay;
use super::jetstream::Nats;
use super::leadership::Leadership;
use super::report::RelayReport;
use super::wal_source::WalRelay;
use crate::backoff::Backoff;
use crate::client::connect_client;
use crate::durable::DEFAULT_BATCH_SIZE;
use crate::error::Error;
use crate::live::ListenerBuilder;

/// The default stream, made when missing.
pub const DEFAULT_STREAM: &str = "COLUMN_NOTIFY";
/// The default subject prefix: events of channel `c` go to `column_notify.c`.
pub const DEFAULT_SUBJECT_PREFIX: &str = "column_notify";
/// The default most publishes awaiting JetStream's acknowledgement, per channel.
pub const DEFAULT_WINDOW: usize = 256;

/// How often an active relay reports each channel's lag (when it has one).
const LAG_INTERVAL: Duration = Duration::from_secs(10);

/// Publishes the events of durable watches into a NATS JetStream stream: each event of
/// channel `c` once, in event-id order, to subject `<prefix>.c`, with header
/// `Nats-Msg-Id: c:<event_id>` and the payload as the event log holds it for a body.
///
/// Several relays may run as the same consumer: one is active, the others wait as standbys
/// and take over when it ends. See the [module documentation](crate#scaling-out-the-nats-relay)
/// for how "exactly once" is kept through crashes of the relay, the database and the broker.
///
/// ```no_run
/// use column_notify_listener::Relay;
///
/// # async fn run() -> Result<(), column_notify_listener::Error> {
/// let relay = Relay::builder(
///     "postgres://postgres@127.0.0.1/shop",
///     "to-nats",
///     ["orders"],
///     "nats://127.0.0.1:4222",
/// )
/// .connect()
/// .await?;
/// let relayed = relay.run(async { tokio::signal::ctrl_c().await.unwrap() }).await?;
/// println!("{relayed} events relayed");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Relay {
    settings: Arc<Settings>,
}

/// What every part of a relay reads.
#[derive(Debug)]
pub(super) struct Settings {
    pub(super) database: ListenerBuilder,
    pub(super) consumer: String,
    pub(super) channels: Vec<String>,
    pub(super) nats_url: String,
    pub(super) stream: String,
    pub(super) subject_prefix: String,
    pub(super) window: usize,
    pub(super) batch_size: usize,
    pub(super) backoff: Backoff,
    /// Whether the channels are those of WAL watches (else durable ones).
    pub(super) wal: bool,
    reports: Option<mpsc::UnboundedSender<RelayReport>>,
}

impl Settings {
    pub(super) fn report(&self, report: RelayReport) {
        if let Some(reports) = &self.reports {
            // A caller that stopped reading reports still gets a relay that works.
            let _ = reports.send(report);
        }
    }
}

/// Builds a [`Relay`]; see [`Relay::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until connect() is awaited"]
pub struct RelayBuilder {
    settings: Settings,
}

impl Relay {
    /// A relay of `channels` (each of a durable watch) as consumer `consumer`, into the NATS
    /// server at `nats_url`.
    pub fn builder(
        database_url: impl Into<String>,
        consumer: impl Into<String>,
        channels: impl IntoIterator<Item = impl Into<String>>,
        nats_url: impl Into<String>,
    ) -> RelayBuilder {
        let database = ListenerBuilder::new(database_url);
        let backoff = database.backoff;
        RelayBuilder {
            settings: Settings {
                database,
                consumer: consumer.into(),
                channels: channels.into_iter().map(Into::into).collect(),
                nats_url: nats_url.into(),
                stream: DEFAULT_STREAM.to_owned(),
                subject_prefix: DEFAULT_SUBJECT_PREFIX.to_owned(),
                window: DEFAULT_WINDOW,
                batch_size: DEFAULT_BATCH_SIZE,
                backoff,
                wal: false,
                reports: None,
            },
        }
    }

    /// The consumer's name.
    pub fn consumer(&self) -> &str {
        &self.settings.consumer
    }

    /// The channels relayed.
    pub fn channels(&self) -> &[String] {
        &self.settings.channels
    }

    /// Relays until `shutdown` resolves, then lets the events in flight be acknowledged
    /// (by JetStream, then in PostgreSQL) and returns how many events it published.
    ///
    /// It first waits for the consumer's lock (as a standby while another relay holds it),
    /// then relays every channel. Lost connections, to PostgreSQL or NATS, are reconnected;
    /// when the lock's own connection is lost, publishing stops at once and the relay waits
    /// for the lock again.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<u64, Error> {
        let settings = self.settings;
        let relayed = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = watch::channel(false);
        tokio::pin!(shutdown);
        'relaying: loop {
            let acquire = Leadership::acquire(
                &settings.database.url,
                &settings.database.tls,
                settings.backoff,
                &settings.consumer,
                &settings.channels,
                || {
                    settings.report(RelayReport::Standby {
                        consumer: settings.consumer.clone(),
                    })
                },
            );
            let mut leadership = tokio::select! {
                leadership = acquire => leadership,
                () = &mut shutdown => break 'relaying,
            };
            settings.report(RelayReport::Active {
                consumer: settings.consumer.clone(),
                channels: settings.channels.clone(),
            });
            let mut channels = JoinSet::new();
            if settings.wal {
                // One replication stream carries every channel.
                channels.spawn(
                    WalRelay {
                        settings: Arc::clone(&settings),
                        stop: stopped.clone(),
                        relayed: Arc::clone(&relayed),
                    }
                    .run(),
                );
            } else {
                for channel in &settings.channels {
                    channels.spawn(
                        ChannelRelay {
                            settings: Arc::clone(&settings),
                            channel: channel.clone(),
                            stop: stopped.clone(),
                            relayed: Arc::clone(&relayed),
                        }
                        .run(),
                    );
                }
            }
            let mut lag_check = tokio::time::interval(LAG_INTERVAL);
            lag_check.tick().await;
            loop {
                tokio::select! {
                    error = leadership.lost() => {
                        // Another relay may take the lock now: stop publishing at once.
                        channels.abort_all();
                        while channels.join_next().await.is_some() {}
                        settings.report(RelayReport::LockLost { error });
                        break;
                    }
                    () = &mut shutdown => {
                        let _ = stop.send(true);
                        while channels.join_next().await.is_some() {}
                        break 'relaying;
                    }
                    _ = lag_check.tick(), if !settings.wal => {
                        for channel in &settings.channels {
                            if let Some(events) = leadership.lag(&settings.consumer, channel).await {
                                if events > 0 {
                                    settings.report(RelayReport::Lag { channel: channel.clone(), events });
                                }
                            }
                        }
                    }
                }
            }
        }
        let relayed = relayed.load(Ordering::Relaxed);
        settings.report(RelayReport::Stopped { relayed });
        Ok(relayed)
    }
}

impl RelayBuilder {
    /// The JetStream stream (default [`DEFAULT_STREAM`]). Made when missing (file storage,
    /// subjects `<prefix>.>`); a stream found is used as it is (duplicate window, retention,
    /// storage are its own) when its subjects cover `<prefix>.>`.
    pub fn stream(mut self, stream: impl Into<String>) -> Self {
        self.settings.stream = stream.into();
        self
    }

    /// The subject prefix (default [`DEFAULT_SUBJECT_PREFIX`]): channel `c` goes to
    /// `<prefix>.c`.
    pub fn subject_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.settings.subject_prefix = prefix.into();
        self
    }

    /// The most publishes of a channel awaiting JetStream's acknowledgement (default
    /// [`DEFAULT_WINDOW`]).
    pub fn window(mut self, publishes: usize) -> Self {
        self.settings.window = publishes;
        self
    }

    /// The most events read from the log at once (default [`DEFAULT_BATCH_SIZE`]).
    pub fn batch_size(mut self, events: usize) -> Self {
        self.settings.batch_size = events;
        self
    }

    /// Changes the PostgreSQL connection settings (TLS, backoff), given as a
    /// [`ListenerBuilder`] for the relay's URL; the backoff also paces NATS reconnections.
    pub fn connection(
        mut self,
        configure: impl FnOnce(ListenerBuilder) -> ListenerBuilder,
    ) -> Self {
        self.settings.database = configure(self.settings.database);
        self.settings.backoff = self.settings.database.backoff;
        self
    }

    /// Where the relay sends its [`RelayReport`]s (state changes, progress).
    pub fn reports(mut self, reports: mpsc::UnboundedSender<RelayReport>) -> Self {
        self.settings.reports = Some(reports);
        self
    }

    /// Checks the settings and the setup: a consumer name, at least one channel, each a
    /// durable watch's and usable as a NATS subject token; a NATS server with JetStream; the
    /// stream, made when missing. Nothing is published yet.
    pub async fn connect(self) -> Result<Relay, Error> {
        let mut settings = self.settings;
        if settings.consumer.is_empty() {
            return Err(Error::InvalidRelay("the consumer name is empty".into()));
        }
        if settings.channels.is_empty() {
            return Err(Error::NoChannel);
        }
        if settings.window == 0 {
            return Err(Error::InvalidRelay(
                "the window must allow at least one publish".into(),
            ));
        }
        if settings.batch_size == 0 || settings.batch_size > i32::MAX as usize {
            return Err(Error::InvalidBatchSize(settings.batch_size));
        }
        check_subject_tokens(&settings.subject_prefix, "subject prefix", true)?;
        for channel in &settings.channels {
            check_subject_tokens(channel, "channel", false)?;
        }
        let client = connect_client(&settings.database.url, &settings.database.tls).await?;
        let mut sources = Vec::new();
        for channel in &settings.channels {
            let (watches, durable, wal) = watches_of(&client, channel).await?;
            if durable == 0 && wal == 0 {
                return Err(Error::NotDurable {
                    channel: channel.clone(),
                    watched: watches > 0,
                });
            }
            sources.push(wal > 0);
        }
        settings.wal = sources[0];
        if sources.iter().any(|&wal| wal != settings.wal) {
            return Err(Error::InvalidRelay(
                "the channels mix durable and WAL watches: run one relay for each kind".into(),
            ));
        }
        if settings.wal {
            crate::wal::slot_name(&settings.consumer)?;
        }
        let nats = Nats::connect(&settings.nats_url).await?;
        nats.check_jetstream(&settings.nats_url).await?;
        let (_, created) = nats
            .stream(&settings.stream, &settings.subject_prefix)
            .await?;
        settings.report(RelayReport::Ready {
            stream: settings.stream.clone(),
            subjects: format!("{}.>", settings.subject_prefix),
            created,
        });
        Ok(Relay {
            settings: Arc::new(settings),
        })
    }
}

/// How many watches feed `channel`, how many of them durable, how many WAL watches (none
/// before the extension had WAL delivery).
async fn watches_of(
    client: &tokio_postgres::Client,
    channel: &str,
) -> Result<(i64, i64, i64), Error> {
    const QUERY: &str = "SELECT pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE w.durable),
                                pg_catalog.count(*) FILTER (WHERE w.delivery OPERATOR(pg_catalog.=) 'wal')
                         FROM column_notify.watches w WHERE w.channel OPERATOR(pg_catalog.=) $1";
    let row = match client.query_one(QUERY, &[&channel]).await {
        Ok(row) => row,
        // 42703: an extension without WAL delivery.
        Err(error) if error.code().map(|code| code.code()) == Some("42703") => client
            .query_one(
                &QUERY.replace(
                    "pg_catalog.count(*) FILTER (WHERE w.delivery OPERATOR(pg_catalog.=) 'wal')",
                    "0::pg_catalog.int8",
                ),
                &[&channel],
            )
            .await
            .map_err(Error::Query)?,
        Err(error) => return Err(Error::Query(error)),
    };
    Ok((row.get(0), row.get(1), row.get(2)))
}

/// A channel is one subject token; the prefix one or more (`a.b`). None may be empty or
/// hold a space, `*` or `>`.
fn check_subject_tokens(name: &str, what: &'static str, dots_allowed: bool) -> Result<(), Error> {
    let bad = name.is_empty()
        || name.split('.').any(str::is_empty)
        || (!dots_allowed && name.contains('.'))
        || name
            .chars()
            .any(|c| c.is_whitespace() || c == '*' || c == '>');
    if bad {
        return Err(Error::InvalidRelay(format!(
            "the {what} {name:?} cannot be part of a NATS subject (it must be non-empty, \
             without spaces, '*', '>'{})",
            if dots_allowed {
                " or empty tokens"
            } else {
                " or '.'"
            }
        )));
    }
    Ok(())
}
