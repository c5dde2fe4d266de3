//! Connection strings read as libpq reads them, so that whatever connects `psql` connects the
//! listener: the URI and keyword/value forms, a service (`service=`, `PGSERVICE`), the `PG*`
//! environment variables, the password file, and libpq's defaults (the Unix-domain socket,
//! the operating-system user, `sslmode=prefer`).
//!
//! A setting is taken from the first of: the connection string, its service, the environment,
//! the default. tokio-postgres parses URIs and keyword/value strings itself, but knows none of
//! the sources after the first and refuses libpq's TLS keywords, so the string is resolved
//! here and tokio-postgres is handed the result.

mod keywords;
mod parse;
mod passfile;
mod service;
mod target;

pub(crate) use target::Target;

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::Error;
use keywords::KEYWORDS;
use passfile::{find_password, PasswordLookup};

/// Where libpq's default socket folder is looked for, in this order (Debian's, then the
/// upstream default).
const SOCKET_FOLDERS: &[&str] = &["/var/run/postgresql", "/tmp"];
const DEFAULT_PORT: u16 = 5432;

/// The process environment, or a fixed one in tests.
pub(crate) struct Environment {
    vars: Option<HashMap<String, String>>,
}

impl Environment {
    pub(crate) fn process() -> Self {
        Environment { vars: None }
    }

    #[cfg(test)]
    pub(crate) fn fixed(vars: &[(&str, &str)]) -> Self {
        Environment {
            vars: Some(
                vars.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
        }
    }

    /// A variable's value; an empty one counts as unset, as in libpq.
    pub(crate) fn var(&self, name: &str) -> Option<String> {
        let value = match &self.vars {
            Some(vars) => vars.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        value.filter(|value| !value.is_empty())
    }

    pub(crate) fn home(&self) -> Option<PathBuf> {
        self.var("HOME").map(PathBuf::from)
    }
}

/// A connection string with every setting resolved.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    settings: HashMap<String, String>,
}

impl ConnInfo {
    /// Resolves `text` against the process environment.
    pub(crate) fn resolve(text: &str) -> Result<ConnInfo, Error> {
        Self::resolve_in(text, &Environment::process()).map_err(Error::InvalidConnectionString)
    }

    pub(crate) fn resolve_in(text: &str, environment: &Environment) -> Result<ConnInfo, String> {
        let mut settings: HashMap<String, String> = parse::parse(text)?.into_iter().collect();
        let service = settings
            .get("service")
            .cloned()
            .or_else(|| environment.var("PGSERVICE"));
        if let Some(service) = service {
            for (keyword, value) in service::service_parameters(&service, environment)? {
                settings.entry(keyword).or_insert(value);
            }
        }
        for (keyword, variable) in KEYWORDS {
            if let Some(value) = variable.and_then(|variable| environment.var(variable)) {
                settings.entry((*keyword).to_owned()).or_insert(value);
            }
        }
        let mut info = ConnInfo { settings };
        info.add_defaults(environment)?;
        Ok(info)
    }

    fn add_defaults(&mut self, environment: &Environment) -> Result<(), String> {
        if self.get("host").is_none() && self.get("hostaddr").is_none() {
            let folder = SOCKET_FOLDERS
                .iter()
                .find(|folder| Path::new(folder).is_dir())
                .unwrap_or(&SOCKET_FOLDERS[1]);
            self.set("host", folder);
        }
        if self.get("user").is_none() {
            let user = operating_system_user(environment).ok_or(
                "no user name given, and the operating system's is unknown: set user or PGUSER",
            )?;
            self.set("user", &user);
        }
        if self.get("dbname").is_none() {
            let user = self.user().to_owned();
            self.set("dbname", &user);
        }
        if self.get("password").is_none() {
            let file = self
                .get("passfile")
                .map(PathBuf::from)
                .or_else(|| environment.home().map(|home| home.join(".pgpass")));
            let lookup = PasswordLookup {
                host: self.first_host(),
                port: self.first_port()?,
                dbname: self.dbname(),
                user: self.user(),
            };
            if let Some(password) = file.and_then(|file| find_password(&file, &lookup)) {
                self.set("password", &password);
            }
        }
        Ok(())
    }

    pub(crate) fn get(&self, keyword: &str) -> Option<&str> {
        self.settings
            .get(keyword)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    fn set(&mut self, keyword: &str, value: &str) {
        self.settings.insert(keyword.to_owned(), value.to_owned());
    }

    pub(crate) fn user(&self) -> &str {
        self.get("user").unwrap_or_default()
    }

    pub(crate) fn dbname(&self) -> &str {
        self.get("dbname").unwrap_or_default()
    }

    pub(crate) fn password(&self) -> Option<&str> {
        self.get("password")
    }

    /// The first host name (or socket folder); the first `hostaddr` when no host is named.
    pub(crate) fn first_host(&self) -> &str {
        self.first_of("host")
            .or_else(|| self.first_of("hostaddr"))
            .unwrap_or_default()
    }

    /// The address to connect to for the first host: its `hostaddr`, or the host itself.
    pub(crate) fn first_address(&self) -> &str {
        self.first_of("hostaddr")
            .unwrap_or_else(|| self.first_host())
    }

    /// The first entry of a comma-separated list setting, unless empty.
    fn first_of(&self, keyword: &str) -> Option<&str> {
        self.get(keyword)
            .and_then(|list| list.split(',').next())
            .filter(|first| !first.is_empty())
    }

    pub(crate) fn first_port(&self) -> Result<u16, String> {
        match self.get("port").and_then(|list| list.split(',').next()) {
            None | Some("") => Ok(DEFAULT_PORT),
            Some(port) => port
                .parse()
                .map_err(|_| format!("invalid port number: \"{port}\"")),
        }
    }

    /// Every host is a Unix-domain socket folder: libpq uses no TLS there.
    pub(crate) fn only_sockets(&self) -> bool {
        self.get("hostaddr").is_none()
            && self
                .get("host")
                .is_some_and(|hosts| hosts.split(',').all(|host| host.starts_with('/')))
    }

    /// The tokio-postgres configuration of these settings (TLS is set up apart, see
    /// [`crate::tls`]).
    pub(crate) fn pg_config(&self, tls_mode: &str) -> Result<tokio_postgres::Config, Error> {
        let mut text = String::new();
        let mut push = |keyword: &str, value: &str| {
            let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
            text.push_str(&format!("{keyword}='{quoted}' "));
        };
        for (keyword, value) in &self.settings {
            let keyword = match keyword.as_str() {
                // Read here, not by tokio-postgres.
                "service"
                | "passfile"
                | "sslmode"
                | "sslcert"
                | "sslkey"
                | "sslrootcert"
                | "fallback_application_name" => continue,
                "keepalives_count" => "keepalives_retries",
                other => other,
            };
            if !value.is_empty() {
                push(keyword, value);
            }
        }
        if self.get("application_name").is_none() {
            if let Some(fallback) = self.get("fallback_application_name") {
                push("application_name", fallback);
            }
        }
        push("sslmode", tls_mode);
        text.parse().map_err(|error: tokio_postgres::Error| {
            Error::InvalidConnectionString(error.to_string())
        })
    }
}

/// The operating system's name for the user running this process, as libpq takes it.
fn operating_system_user(environment: &Environment) -> Option<String> {
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            (fields.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
        })
        .or_else(|| environment.var("USER"))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn resolve(text: &str, vars: &[(&str, &str)]) -> ConnInfo {
        ConnInfo::resolve_in(text, &Environment::fixed(vars)).unwrap()
    }

    #[test]
    fn the_string_wins_over_the_environment() {
        let info = resolve(
            "host=db.example.com dbname=orders",
            &[("PGHOST", "ignored"), ("PGPORT", "6432"), ("PGUSER", "app")],
        );
        assert_eq!(info.first_host(), "db.example.com");
        assert_eq!(info.first_port(), Ok(6432));
        assert_eq!(info.user(), "app");
        assert_eq!(info.dbname(), "orders");
    }

    #[test]
    fn libpq_defaults_without_anything() {
        let info = resolve("", &[("USER", "fallback")]);
        assert!(info.first_host().starts_with('/'), "{}", info.first_host());
        assert!(info.only_sockets());
        assert_eq!(info.first_port(), Ok(5432));
        assert!(!info.user().is_empty());
        assert_eq!(info.dbname(), info.user());
        let config = info.pg_config("disable").unwrap();
        assert_eq!(config.get_user(), Some(info.user()));
    }

    #[test]
    fn a_service_fills_what_the_string_leaves() {
        let folder = std::env::temp_dir().join(format!("conninfo-service-{}", std::process::id()));
        std::fs::create_dir_all(&folder).unwrap();
        let file = folder.join("services.conf");
        std::fs::write(
            &file,
            "[orders]\nhost=svc.example.com\nport=7000\ndbname=svc\n",
        )
        .unwrap();
        let file_name = file.to_str().unwrap();
        let info = resolve(
            "service=orders dbname=mine",
            &[
                ("PGSERVICEFILE", file_name),
                ("PGPORT", "1"),
                ("PGUSER", "u"),
            ],
        );
        assert_eq!(info.first_host(), "svc.example.com");
        assert_eq!(info.first_port(), Ok(7000));
        assert_eq!(info.dbname(), "mine");
        let by_variable = resolve("", &[("PGSERVICEFILE", file_name), ("PGSERVICE", "orders")]);
        assert_eq!(by_variable.dbname(), "svc");
        let missing = ConnInfo::resolve_in(
            "service=nope",
            &Environment::fixed(&[
                ("PGSERVICEFILE", file_name),
                ("PGSYSCONFDIR", "/nonexistent"),
            ]),
        )
        .unwrap_err();
        assert!(
            missing.starts_with("definition of service \"nope\" not found"),
            "{missing}"
        );
        std::fs::remove_dir_all(&folder).unwrap();
    }

    #[test]
    fn the_password_file_only_when_private_and_no_password_given() {
        let folder = std::env::temp_dir().join(format!("conninfo-pgpass-{}", std::process::id()));
        std::fs::create_dir_all(&folder).unwrap();
        let file = folder.join("pgpass");
        let mut handle = std::fs::File::create(&file).unwrap();
        writeln!(handle, "# comment\ndb:5432:orders:app:from-file").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let vars = [("PGPASSFILE", file.to_str().unwrap())];
        let text = "host=db dbname=orders user=app";
        assert_eq!(resolve(text, &vars).password(), Some("from-file"));
        assert_eq!(
            resolve(&format!("{text} password=given"), &vars).password(),
            Some("given")
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(resolve(text, &vars).password(), None);
        std::fs::remove_dir_all(&folder).unwrap();
    }

    #[test]
    fn tokio_postgres_gets_the_resolved_settings() {
        let info = resolve(
            "postgres://app:p%27w@db:6432/orders?keepalives_count=3&fallback_application_name=cli&sslrootcert=/x",
            &[],
        );
        let config = info.pg_config("require").unwrap();
        assert_eq!(config.get_password(), Some(&b"p'w"[..]));
        assert_eq!(config.get_application_name(), Some("cli"));
        assert_eq!(config.get_keepalives_retries(), Some(3));
        assert_eq!(
            config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        let bad = resolve("connect_timeout=soon", &[])
            .pg_config("prefer")
            .unwrap_err();
        assert!(
            bad.to_string().starts_with("invalid connection string"),
            "{bad}"
        );
        let port = ConnInfo::resolve_in("port=x", &Environment::fixed(&[])).unwrap_err();
        assert_eq!(port, "invalid port number: \"x\"");
    }
}
