//! One connection to the server: connect, `LISTEN`, then forward notifications while
//! checking that the server still answers.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::Poll;

use crate::tls::Connector;
use tokio::sync::mpsc::{Sender, UnboundedReceiver};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, Client, Connection, Socket};

use super::channels::Request;
use super::events::{Notification, RawEvent};
use super::settings::Settings;
use crate::error::{describe, Error};

type PgConnection = Connection<Socket, <Connector as MakeTlsConnect<Socket>>::Stream>;

/// A connected session that listens on every channel.
pub(crate) struct Session {
    client: Client,
    connection: PgConnection,
    /// Notifications that arrived while `LISTEN` was finishing.
    early: Vec<Notification>,
}

/// Why a session ended.
pub(crate) enum End {
    /// The connection was lost; the text says why.
    Lost(String),
    /// The consumer dropped the listener.
    ConsumerGone,
}

impl Session {
    /// Connects and listens, within the connect timeout.
    #[tracing::instrument(name = "connect", skip_all, fields(
        host = settings.target.info.first_host(),
        dbname = settings.target.info.dbname(),
        channels = settings.channels.list().len(),
    ))]
    pub(crate) async fn open(settings: &Settings) -> Result<Session, Error> {
        let opening = async {
            // Without tls-rustls the connector is NoTls, which is Copy; rustls' is not.
            #[allow(clippy::clone_on_copy)]
            let (client, mut connection) = settings
                .target
                .pg
                .connect(settings.tls.clone())
                .await
                .map_err(|error| settings.target.explain(error))?;
            let mut early = Vec::new();
            drive(
                &mut connection,
                client.batch_execute(&settings.channels.listen_sql()),
                &mut early,
            )
            .await
            .map_err(|failed| Error::Listen(failed.reason()))?;
            Ok(Session {
                client,
                connection,
                early,
            })
        };
        let session = timeout(settings.connect_timeout, opening)
            .await
            .map_err(|_| Error::ConnectTimeout(settings.connect_timeout))?;
        match &session {
            Ok(_) => tracing::info!("connected and listening"),
            Err(error) => tracing::debug!(%error, "connection failed"),
        }
        session
    }

    /// Forwards every notification to `events`, and runs the LISTEN and UNLISTEN the
    /// listener asks for, until the connection is lost or the consumer is gone. Waiting for
    /// room in `events` stops reading from the socket, so the server keeps the notifications
    /// in its queue meanwhile.
    pub(crate) async fn run(
        self,
        events: &Sender<RawEvent>,
        requests: &mut UnboundedReceiver<Request>,
        settings: &Settings,
    ) -> End {
        let Session {
            client,
            mut connection,
            early,
        } = self;
        // Received and not yet handed over. While one waits the socket is not read (the
        // server keeps what follows in its queue), but the listener's requests are answered.
        let mut unsent: VecDeque<Notification> = early.into();
        let health = settings.health;
        let mut ping: Option<Pin<Box<dyn Future<Output = _> + Send + '_>>> = None;
        // Any message proves the connection alive. The timer is set again only when it goes
        // off (to the last message's time plus the idle time, if that is later): moving it at
        // every notification cost more than receiving the notification.
        let mut last_message = Instant::now();
        let silence = sleep_until(last_message + health.idle());
        tokio::pin!(silence);
        loop {
            if let Some(notification) = unsent.pop_front() {
                tokio::select! {
                    permit = events.reserve() => match permit {
                        Ok(permit) => permit.send(RawEvent::Notification(notification)),
                        Err(_) => return End::ConsumerGone,
                    },
                    request = requests.recv() => {
                        unsent.push_front(notification);
                        if let Some(end) = answer(request, &client, &mut connection, &mut unsent).await {
                            return end;
                        }
                    }
                }
            } else {
                tokio::select! {
                    message = poll_fn(|cx| connection.poll_message(cx)) => match message {
                        Some(Ok(AsyncMessage::Notification(notification))) => {
                            unsent.push_back(owned(&notification));
                        }
                        Some(Ok(_notice)) => {}
                        Some(Err(error)) => return End::Lost(describe(&error)),
                        None => return End::Lost("the server closed the connection".to_string()),
                    },
                    request = requests.recv() => {
                        if let Some(end) = answer(request, &client, &mut connection, &mut unsent).await {
                            return end;
                        }
                    }
                    answer = async { ping.as_mut().expect("guarded by the condition").await },
                        if ping.is_some() =>
                    {
                        if let Err(error) = answer {
                            return End::Lost(describe(&error));
                        }
                        ping = None;
                    }
                    () = &mut silence => {
                        let allowed = match ping.is_some() {
                            true => health.timeout(),
                            false => health.idle(),
                        };
                        if last_message + allowed > Instant::now() {
                            silence.as_mut().reset(last_message + allowed);
                            continue;
                        }
                        if ping.is_some() {
                            return End::Lost(format!(
                                "no answer from the server within {:?}",
                                health.timeout()
                            ));
                        }
                        ping = Some(Box::pin(client.batch_execute("SELECT 1")));
                        last_message = Instant::now();
                        silence.as_mut().reset(last_message + health.timeout());
                        continue;
                    }
                }
            }
            // Time spent waiting for the consumer does not count against the server.
            last_message = Instant::now();
        }
    }
}

/// Runs a LISTEN or UNLISTEN the listener asked for and answers it; notifications that
/// arrive meanwhile join `unsent`. `Some` when the session is over.
async fn answer(
    request: Option<Request>,
    client: &Client,
    connection: &mut PgConnection,
    unsent: &mut VecDeque<Notification>,
) -> Option<End> {
    let Some(Request { sql, reply }) = request else {
        return Some(End::ConsumerGone);
    };
    let mut early = Vec::new();
    let result = drive(connection, client.batch_execute(&sql), &mut early).await;
    unsent.extend(early);
    match result {
        Ok(()) => {
            let _ = reply.send(Ok(()));
            None
        }
        // The channel list is changed already: the next connection listens as asked, and
        // the loss is reported as any other.
        Err(Failed::Connection(reason)) => {
            let _ = reply.send(Ok(()));
            Some(End::Lost(reason))
        }
        Err(Failed::Statement(reason)) => {
            let _ = reply.send(Err(Error::Listen(reason)));
            None
        }
    }
}

/// Polls `request` to completion while driving the connection; notifications that arrive
/// meanwhile are kept in `early`. Only the notifications that precede the request's answer
/// are read, so `early` stays small.
async fn drive<R>(
    connection: &mut PgConnection,
    request: impl Future<Output = Result<R, tokio_postgres::Error>>,
    early: &mut Vec<Notification>,
) -> Result<R, Failed> {
    let mut request = pin!(request);
    poll_fn(|cx| loop {
        if let Poll::Ready(result) = request.as_mut().poll(cx) {
            return Poll::Ready(result.map_err(|error| {
                let reason = describe(&error);
                // The server refused the statement and goes on; anything else ended it.
                if error.as_db_error().is_some() {
                    Failed::Statement(reason)
                } else {
                    Failed::Connection(reason)
                }
            }));
        }
        match connection.poll_message(cx) {
            Poll::Ready(Some(Ok(AsyncMessage::Notification(notification)))) => {
                early.push(owned(&notification));
            }
            Poll::Ready(Some(Ok(_notice))) => {}
            Poll::Ready(Some(Err(error))) => {
                return Poll::Ready(Err(Failed::Connection(describe(&error))))
            }
            Poll::Ready(None) => {
                return Poll::Ready(Err(Failed::Connection(
                    "the server closed the connection".to_string(),
                )))
            }
            Poll::Pending => return Poll::Pending,
        }
    })
    .await
}

/// Why a statement run by [`drive`] failed.
enum Failed {
    /// The server refused it; the connection goes on.
    Statement(String),
    /// The connection ended.
    Connection(String),
}

impl Failed {
    fn reason(self) -> String {
        match self {
            Failed::Statement(reason) | Failed::Connection(reason) => reason,
        }
    }
}

fn owned(notification: &tokio_postgres::Notification) -> Notification {
    Notification {
        channel: notification.channel().to_string(),
        payload: notification.payload().to_string(),
        process_id: notification.process_id(),
    }
}
