//! TLS set up from the connection string's `sslmode`, `sslrootcert`, `sslcert` and `sslkey`
//! as libpq sets it up, for tokio-postgres and for the replication protocol. The checks are
//! decided here; [`rustls`] makes the connections (the `tls-rustls` feature, on by default),
//! and without it [`plain`] refuses what needs TLS.

#[cfg(not(feature = "tls-rustls"))]
mod plain;
#[cfg(feature = "tls-rustls")]
mod rustls;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[cfg(not(feature = "tls-rustls"))]
use self::plain as backend;
#[cfg(feature = "tls-rustls")]
use self::rustls as backend;
pub(crate) use backend::Connector;

use crate::conninfo::ConnInfo;
use crate::error::Error;

/// How the server's certificate is checked when the connection uses TLS.
///
/// Whether TLS is used is the connection string's `sslmode`, as in libpq: `disable`,
/// `allow` and `prefer` (the default: TLS when the server offers it), `require`,
/// `verify-ca` and `verify-full` (TLS or fail). No TLS is tried on a Unix-domain socket.
///
/// ```
/// use column_notify_listener::{Listener, TlsVerification};
///
/// // As libpq: a self-signed server certificate is accepted with sslmode=require; with
/// // verify-full it must be signed by the CA in sslrootcert and name the host.
/// let builder = Listener::builder(
///     "postgres://app@db.example.com/app?sslmode=verify-full&sslrootcert=/etc/ssl/certs/db-ca.pem",
/// )
/// .channel("appointments_canceled_changed");
/// # let _ = builder;
/// // Or decided in code, whatever the connection string says:
/// let builder = Listener::builder("postgres://app@db.example.com/app?sslmode=require")
///     .channel("appointments_canceled_changed")
///     .tls(TlsVerification::RootCertificates("/etc/ssl/certs/db-ca.pem".into()));
/// # let _ = builder;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsVerification {
    /// As libpq decides from the connection string (the default): `verify-full` checks the
    /// certificate against `sslrootcert` (`~/.postgresql/root.crt` by default, `system` for
    /// the Mozilla root certificates) and the host name, `verify-ca` the certificate only;
    /// `require`, `prefer` and `allow` check nothing unless a root certificate file is
    /// there, when they check as `verify-ca` does. A client certificate is sent from
    /// `sslcert`/`sslkey` (`~/.postgresql/postgresql.crt` and `.key` when they exist).
    #[default]
    ConnectionString,
    /// Verify the certificate and host name against the Mozilla root certificates
    /// (the `webpki-roots` set).
    WebPkiRoots,
    /// Verify the certificate and host name against the CA certificates of this PEM file.
    RootCertificates(PathBuf),
    /// Encrypt without checking who the server is, as libpq does for `sslmode=require`
    /// without a root certificate. This protects against eavesdropping only, not against an
    /// impostor server.
    NoVerification,
}

/// Which certificates a server's is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Roots {
    WebPki,
    File(PathBuf),
}

/// How the server is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ServerCheck {
    Nothing,
    Certificate { roots: Roots, host_name: bool },
}

/// The TLS of one connection string: whether to use it, how to check the server, and the
/// client certificate to present.
#[derive(Debug, Clone)]
pub(crate) struct TlsPlan {
    /// The sslmode tokio-postgres knows that behaves as `mode` for these hosts.
    tokio_mode: &'static str,
    check: ServerCheck,
    /// The client certificate and its key.
    client: Option<(PathBuf, PathBuf)>,
}

impl TlsPlan {
    pub(crate) fn new(info: &ConnInfo, verification: &TlsVerification) -> Result<Self, Error> {
        let mode = info.get("sslmode").unwrap_or("prefer");
        if !SSL_MODES.contains(&mode) {
            return Err(Error::InvalidConnectionString(format!(
                "invalid sslmode value: \"{mode}\" (one of {})",
                SSL_MODES.join(", ")
            )));
        }
        let check = match verification {
            TlsVerification::ConnectionString => check_of_mode(info, mode)?,
            TlsVerification::WebPkiRoots => ServerCheck::Certificate {
                roots: Roots::WebPki,
                host_name: true,
            },
            TlsVerification::RootCertificates(path) => ServerCheck::Certificate {
                roots: Roots::File(path.clone()),
                host_name: true,
            },
            TlsVerification::NoVerification => ServerCheck::Nothing,
        };
        let tokio_mode = match mode {
            _ if info.only_sockets() => "disable",
            "disable" => "disable",
            "allow" | "prefer" => "prefer",
            _ => "require",
        };
        Ok(TlsPlan {
            tokio_mode,
            check,
            client: client_certificate(info)?,
        })
    }

    /// The sslmode tokio-postgres knows that behaves as this one.
    pub(crate) fn tokio_mode(&self) -> &'static str {
        self.tokio_mode
    }

    /// What tokio-postgres makes TLS connections with.
    pub(crate) fn connector(&self) -> Result<Connector, Error> {
        backend::connector(self)
    }

    /// The same plan for the replication protocol's connection (pgwire-replication).
    pub(crate) fn replication(&self, info: &ConnInfo) -> pgwire_replication::TlsConfig {
        use pgwire_replication::TlsConfig;
        let tls = match (&self.check, self.tokio_mode) {
            (_, "disable") => return TlsConfig::disabled(),
            (ServerCheck::Nothing, "prefer") => TlsConfig {
                mode: pgwire_replication::SslMode::Prefer,
                ..TlsConfig::disabled()
            },
            (ServerCheck::Nothing, _) => TlsConfig::require(),
            (ServerCheck::Certificate { roots, host_name }, _) => {
                let file = match roots {
                    Roots::WebPki => None,
                    Roots::File(path) => Some(path.clone()),
                };
                if *host_name {
                    TlsConfig::verify_full(file)
                } else {
                    TlsConfig::verify_ca(file)
                }
            }
        };
        let tls = tls.with_sni_hostname(info.first_host());
        match &self.client {
            Some((certificate, key)) => tls.with_client_cert(certificate, key),
            None => tls,
        }
    }

    /// A connection failure, with what to change when the server's certificate was refused.
    pub(crate) fn explain(&self, info: &ConnInfo, error: tokio_postgres::Error) -> Error {
        match backend::certificate_refusal(self, info, &error) {
            Some(explained) => Error::Tls(explained),
            None => Error::Connect(error),
        }
    }
}

const SSL_MODES: &[&str] = &[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

/// libpq's check for `sslmode` when nothing overrides it.
fn check_of_mode(info: &ConnInfo, mode: &str) -> Result<ServerCheck, Error> {
    let given = info.get("sslrootcert");
    let roots = match given {
        Some("system") => Some(Roots::WebPki),
        Some(path) => Some(Roots::File(PathBuf::from(path))),
        None => default_file("root.crt").map(Roots::File),
    };
    let host_name = match mode {
        "verify-full" => true,
        // libpq 16: sslrootcert=system always checks the host name.
        _ if given == Some("system") => true,
        _ => false,
    };
    match (roots, mode) {
        (Some(roots), _) if mode != "disable" => Ok(ServerCheck::Certificate { roots, host_name }),
        (None, "verify-ca" | "verify-full") => Err(Error::Tls(format!(
            "sslmode={mode} needs a root certificate: \"{}\" does not exist; set sslrootcert to the CA file that signed the server's certificate (or sslrootcert=system for the Mozilla root certificates), or use sslmode=require to encrypt without checking",
            home_file("root.crt").display()
        ))),
        _ => Ok(ServerCheck::Nothing),
    }
}

/// `sslcert` and `sslkey`, or `~/.postgresql/postgresql.crt` and `.key` when the first exists.
fn client_certificate(info: &ConnInfo) -> Result<Option<(PathBuf, PathBuf)>, Error> {
    let certificate = match info.get("sslcert") {
        Some(path) => {
            let path = PathBuf::from(path);
            if !path.exists() {
                return Err(Error::Tls(format!(
                    "sslcert \"{}\" does not exist",
                    path.display()
                )));
            }
            path
        }
        None => match default_file("postgresql.crt") {
            Some(path) => path,
            None => return Ok(None),
        },
    };
    let key = info
        .get("sslkey")
        .map(PathBuf::from)
        .unwrap_or_else(|| home_file("postgresql.key"));
    check_private_key(&key)?;
    Ok(Some((certificate, key)))
}

/// As libpq: a key the group or others may read is refused (for a root-owned key, the
/// group may read it).
fn check_private_key(key: &Path) -> Result<(), Error> {
    let metadata = std::fs::metadata(key).map_err(|error| {
        Error::Tls(format!("cannot read sslkey \"{}\": {error}", key.display()))
    })?;
    let mode = metadata.mode();
    let open = match metadata.uid() {
        0 => mode & 0o037 != 0,
        _ => mode & 0o077 != 0,
    };
    if open {
        return Err(Error::Tls(format!(
            "sslkey \"{}\" has group or world access; its permissions must be u=rw (0600) or less (u=rw,g=r (0640) if owned by root)",
            key.display()
        )));
    }
    Ok(())
}

fn home_file(name: &str) -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_default();
    Path::new(&home).join(".postgresql").join(name)
}

fn default_file(name: &str) -> Option<PathBuf> {
    Some(home_file(name)).filter(|path| path.exists())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conninfo::Environment;

    fn plan(text: &str, verification: &TlsVerification) -> Result<TlsPlan, Error> {
        let info = ConnInfo::resolve_in(text, &Environment::fixed(&[("USER", "u")])).unwrap();
        TlsPlan::new(&info, verification)
    }

    #[cfg(feature = "tls-rustls")]
    #[test]
    fn every_verification_builds() {
        for verification in [
            TlsVerification::ConnectionString,
            TlsVerification::WebPkiRoots,
            TlsVerification::NoVerification,
        ] {
            assert!(plan("host=db", &verification).unwrap().connector().is_ok());
        }
        let system = plan(
            "host=db sslmode=verify-full sslrootcert=system",
            &TlsVerification::default(),
        );
        assert!(system.unwrap().connector().is_ok());
    }

    #[test]
    fn sslmode_decides_like_libpq() {
        let check = |text: &str| plan(text, &TlsVerification::default()).unwrap().check;
        assert_eq!(check("host=db sslmode=require"), ServerCheck::Nothing);
        assert_eq!(
            check("host=db sslmode=require sslrootcert=/ca.pem"),
            ServerCheck::Certificate {
                roots: Roots::File("/ca.pem".into()),
                host_name: false
            }
        );
        assert_eq!(
            check("host=db sslmode=verify-full sslrootcert=/ca.pem"),
            ServerCheck::Certificate {
                roots: Roots::File("/ca.pem".into()),
                host_name: true
            }
        );
        let tokio_mode = |text: &str| {
            plan(text, &TlsVerification::default())
                .unwrap()
                .tokio_mode()
        };
        assert_eq!(
            tokio_mode("host=db sslmode=verify-ca sslrootcert=/ca.pem"),
            "require"
        );
        assert_eq!(tokio_mode("host=db sslmode=allow"), "prefer");
        assert_eq!(tokio_mode("host=/tmp sslmode=require"), "disable");
    }

    #[test]
    fn mistakes_name_the_parameter() {
        let error = |text: &str| {
            plan(text, &TlsVerification::default())
                .unwrap_err()
                .to_string()
        };
        assert!(error("host=db sslmode=sometimes").contains("invalid sslmode value: \"sometimes\""));
        assert!(error("host=db sslmode=verify-full").contains("set sslrootcert"));
        assert!(
            error("host=db sslcert=/nonexistent/c.crt").contains("sslcert \"/nonexistent/c.crt\"")
        );
    }

    #[cfg(feature = "tls-rustls")]
    #[test]
    fn an_unreadable_root_file_is_named() {
        let unreadable = plan(
            "host=db sslmode=verify-ca sslrootcert=/nonexistent/ca.pem",
            &TlsVerification::default(),
        )
        .unwrap()
        .connector()
        .err()
        .expect("a missing root file is an error")
        .to_string();
        assert!(
            unreadable.contains("sslrootcert \"/nonexistent/ca.pem\""),
            "{unreadable}"
        );
    }

    #[cfg(not(feature = "tls-rustls"))]
    #[test]
    fn without_tls_what_needs_it_is_refused() {
        let connector = |text: &str| plan(text, &TlsVerification::default()).unwrap().connector();
        assert!(connector("host=db sslmode=prefer").is_ok());
        assert!(connector("host=/tmp sslmode=require").is_ok());
        let refused = connector("host=db sslmode=require")
            .unwrap_err()
            .to_string();
        assert!(refused.contains("tls-rustls feature"), "{refused}");
    }
}
