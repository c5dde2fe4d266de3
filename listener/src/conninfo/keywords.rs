//! The connection keywords this crate understands, the environment variable libpq reads for
//! each, and the libpq keywords it knows but does not implement (refused by name, so that a
//! setting is never silently dropped).

/// Keywords with the environment variable that supplies them when neither the connection
/// string nor its service sets them, in libpq's order.
pub(crate) const KEYWORDS: &[(&str, Option<&str>)] = &[
    ("service", Some("PGSERVICE")),
    ("user", Some("PGUSER")),
    ("password", Some("PGPASSWORD")),
    ("passfile", Some("PGPASSFILE")),
    ("channel_binding", Some("PGCHANNELBINDING")),
    ("connect_timeout", Some("PGCONNECT_TIMEOUT")),
    ("dbname", Some("PGDATABASE")),
    ("host", Some("PGHOST")),
    ("hostaddr", Some("PGHOSTADDR")),
    ("port", Some("PGPORT")),
    ("options", Some("PGOPTIONS")),
    ("application_name", Some("PGAPPNAME")),
    ("fallback_application_name", None),
    ("keepalives", None),
    ("keepalives_idle", None),
    ("keepalives_interval", None),
    ("keepalives_count", None),
    ("tcp_user_timeout", None),
    ("sslmode", Some("PGSSLMODE")),
    ("sslnegotiation", Some("PGSSLNEGOTIATION")),
    ("sslcert", Some("PGSSLCERT")),
    ("sslkey", Some("PGSSLKEY")),
    ("sslrootcert", Some("PGSSLROOTCERT")),
    ("target_session_attrs", Some("PGTARGETSESSIONATTRS")),
    ("load_balance_hosts", Some("PGLOADBALANCEHOSTS")),
];

/// libpq keywords that have no equivalent here.
const UNSUPPORTED: &[&str] = &[
    "client_encoding",
    "gssdelegation",
    "gssencmode",
    "gsslib",
    "krbsrvname",
    "max_protocol_version",
    "min_protocol_version",
    "replication",
    "require_auth",
    "requirepeer",
    "requiressl",
    "ssl_max_protocol_version",
    "ssl_min_protocol_version",
    "sslcertmode",
    "sslcompression",
    "sslcrl",
    "sslcrldir",
    "sslkeylogfile",
    "sslpassword",
    "sslsni",
];

pub(crate) fn check_keyword(keyword: &str) -> Result<(), String> {
    if KEYWORDS.iter().any(|(known, _)| *known == keyword) {
        Ok(())
    } else if UNSUPPORTED.contains(&keyword) {
        Err(format!(
            "connection option \"{keyword}\" is not supported (leave it out, or connect through a tool that uses libpq)"
        ))
    } else {
        Err(format!("invalid connection option \"{keyword}\""))
    }
}
