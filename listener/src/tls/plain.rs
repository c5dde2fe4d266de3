//! Without the `tls-rustls` feature: connections without TLS, and a clear refusal of the
//! settings that need it.

use super::TlsPlan;
use crate::conninfo::ConnInfo;
use crate::error::Error;

pub(crate) type Connector = tokio_postgres::NoTls;

pub(super) fn connector(plan: &TlsPlan) -> Result<Connector, Error> {
    if plan.tokio_mode == "require" {
        return Err(Error::Tls(
            "the connection's sslmode needs TLS, which this build leaves out: build column_notify_listener with its tls-rustls feature, or use sslmode=prefer or disable"
                .to_owned(),
        ));
    }
    Ok(tokio_postgres::NoTls)
}

pub(super) fn certificate_refusal(
    _plan: &TlsPlan,
    _info: &ConnInfo,
    _error: &tokio_postgres::Error,
) -> Option<String> {
    None
}
