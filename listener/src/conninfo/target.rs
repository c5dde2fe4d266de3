//! One connection string made ready to connect: its settings resolved, its TLS set up, and
//! the tokio-postgres configuration of both.

use crate::error::Error;
use crate::tls::{TlsPlan, TlsVerification};

use super::ConnInfo;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) info: ConnInfo,
    pub(crate) tls: TlsPlan,
    pub(crate) pg: tokio_postgres::Config,
}

impl Target {
    /// Resolves `conninfo` (a URI, keyword/value pairs, a database name, or empty for the
    /// environment's defaults); `verification` overrides how the server's certificate is
    /// checked.
    pub(crate) fn new(conninfo: &str, verification: &TlsVerification) -> Result<Target, Error> {
        let info = ConnInfo::resolve(conninfo)?;
        let tls = TlsPlan::new(&info, verification)?;
        let pg = info.pg_config(tls.tokio_mode())?;
        Ok(Target { info, tls, pg })
    }

    /// A failed connection attempt as the crate reports it.
    pub(crate) fn explain(&self, error: tokio_postgres::Error) -> Error {
        self.tls.explain(&self.info, error)
    }
}
