//! Connections made as libpq makes them, against a server with TLS on and roles that must
//! authenticate (scripts/cluster.sh sets both up): PG* variables, the password file, service
//! files, the Unix-domain socket, every sslmode, root certificates and client certificates.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use column_notify_listener::tokio_postgres::config::Host;
use column_notify_listener::tokio_postgres::{Client, Config};
use column_notify_listener::{connect_client, Error, TlsVerification, WalConsumer, WalEvent};
use support::{column_notify, server_url, spawn_piped, unique, wait, ChildGuard};

const PASSWORD_ROLE: &str = "column_notify_password";
const PASSWORD: &str = "pgcn connection test";
const CERTIFICATE_ROLE: &str = "column_notify_cert";

/// The server under test, as its superuser sees it.
struct Server {
    admin: Client,
    port: u16,
    /// Where the cluster keeps its CA, its server and client certificates.
    tls: PathBuf,
    socket_folder: String,
}

impl Server {
    async fn get() -> Server {
        let url = server_url();
        let config: Config = url.parse().expect("DATABASE_URL is a URL");
        let port = config.get_ports().first().copied().unwrap_or(5432);
        assert!(
            matches!(config.get_hosts().first(), Some(Host::Tcp(host)) if host == "127.0.0.1"),
            "these tests need a server on 127.0.0.1 (DATABASE_URL: {url})"
        );
        let admin = connect_client(&url, &TlsVerification::NoVerification)
            .await
            .expect("the superuser connects");
        let setting = |name: &'static str| {
            let admin = &admin;
            async move {
                let row = admin.query_one(&format!("SHOW {name}"), &[]).await.unwrap();
                row.get::<_, String>(0)
            }
        };
        assert_eq!(
            setting("ssl").await,
            "on",
            "these tests need a server with TLS and the roles scripts/cluster.sh sets up"
        );
        let tls = PathBuf::from(setting("ssl_ca_file").await)
            .parent()
            .expect("the CA file is in a folder")
            .to_path_buf();
        let socket_folder = setting("unix_socket_directories")
            .await
            .split(',')
            .next()
            .unwrap()
            .trim()
            .to_owned();
        // One session at a time makes the roles, whatever runs beside this test.
        admin
            .batch_execute(&format!(
                "BEGIN;
                 SELECT pg_advisory_xact_lock(20261203);
                 DO $$ BEGIN
                     IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{PASSWORD_ROLE}') THEN
                         CREATE ROLE {PASSWORD_ROLE} LOGIN;
                     END IF;
                     IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{CERTIFICATE_ROLE}') THEN
                         CREATE ROLE {CERTIFICATE_ROLE} LOGIN;
                     END IF;
                 END $$;
                 ALTER ROLE {PASSWORD_ROLE} PASSWORD '{PASSWORD}';
                 COMMIT;"
            ))
            .await
            .unwrap();
        Server {
            admin,
            port,
            tls,
            socket_folder,
        }
    }

    fn file(&self, name: &str) -> String {
        self.tls.join(name).to_str().unwrap().to_owned()
    }

    /// Whether the session named `application_name` runs as `role`, and with TLS.
    async fn session(&self, application_name: &str) -> Option<(String, bool)> {
        let rows = self
            .admin
            .query(
                "SELECT a.usename::text, s.ssl FROM pg_stat_activity a
                 JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = $1",
                &[&application_name],
            )
            .await
            .unwrap();
        rows.first().map(|row| (row.get(0), row.get(1)))
    }
}

/// A folder of the test's own, removed at the end.
struct Folder(PathBuf);

impl Folder {
    fn new(name: &str) -> Folder {
        let path = std::env::temp_dir().join(unique(name));
        std::fs::create_dir_all(&path).unwrap();
        Folder(path)
    }

    fn write(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `column-notify status` with `env` and the arguments; its exit code and stderr.
fn status(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = column_notify!();
    command.arg("status").args(args).envs(env.iter().copied());
    let output = command.output().unwrap();
    (
        output.status.code(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[tokio::test]
async fn the_cli_connects_with_psqls_environment_variables_alone() {
    let server = Server::get().await;
    let port = server.port.to_string();
    let name = unique("pgenv");
    let channel = unique("env_channel");
    let env = [
        ("PGHOST", "127.0.0.1"),
        ("PGPORT", port.as_str()),
        ("PGUSER", PASSWORD_ROLE),
        ("PGPASSWORD", PASSWORD),
        ("PGDATABASE", "postgres"),
        ("PGAPPNAME", name.as_str()),
        ("PGSSLMODE", "require"),
    ];
    let mut command = column_notify!();
    command
        .args(["listen", &channel, "--count", "1"])
        .envs(env.iter().copied());
    let (child, stdout, stderr) = spawn_piped(&mut command);
    let mut child = ChildGuard(child);
    let connected = stderr.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(connected.contains("connected; listening on"), "{connected}");
    assert_eq!(
        server.session(&name).await,
        Some((PASSWORD_ROLE.to_owned(), true)),
        "the listener runs as the role PGUSER names, with TLS"
    );
    server
        .admin
        .execute("SELECT pg_notify($1, '{\"id\": 1}')", &[&channel])
        .await
        .unwrap();
    let line = stdout.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(line.contains(&channel), "{line}");
    assert_eq!(wait(&mut child, Duration::from_secs(10)).code(), Some(0));

    let mut wrong = env.to_vec();
    wrong.push(("PGPASSWORD", "wrong"));
    let (code, message) = status(&[], &wrong);
    assert_eq!(code, Some(1), "{message}");
    assert!(
        message.contains("password authentication failed"),
        "{message}"
    );
}

#[tokio::test]
async fn a_password_file_and_a_service_file_as_libpq_reads_them() {
    let server = Server::get().await;
    let home = Folder::new("home");
    let home_path = home.0.to_str().unwrap().to_owned();
    home.write(
        ".pg_service.conf",
        &format!(
            "# services of the test\n[orders]\nhost=127.0.0.1\nport={}\nuser={PASSWORD_ROLE}\ndbname=postgres\n",
            server.port
        ),
        0o644,
    );
    let pgpass = home.write(
        ".pgpass",
        &format!("127.0.0.1:{}:*:{PASSWORD_ROLE}:{PASSWORD}\n", server.port),
        0o600,
    );
    let env = [
        ("HOME", home_path.as_str()),
        ("PGSYSCONFDIR", home_path.as_str()),
    ];

    let (code, message) = status(&["-d", "service=orders"], &env);
    assert_eq!((code, message.as_str()), (Some(0), ""));
    let mut by_variable = env.to_vec();
    by_variable.push(("PGSERVICE", "orders"));
    let (code, message) = status(&[], &by_variable);
    assert_eq!((code, message.as_str()), (Some(0), ""));
    // A file others can read is ignored, as libpq ignores it: no password then.
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, message) = status(&["-d", "service=orders"], &env);
    assert_eq!(code, Some(1), "{message}");
    assert!(message.contains("password"), "{message}");

    let (code, message) = status(&["-d", "service=elsewhere"], &env);
    assert_eq!(code, Some(2), "{message}");
    assert!(
        message.contains("definition of service \"elsewhere\" not found"),
        "{message}"
    );
}

#[tokio::test]
async fn the_unix_socket_when_no_host_is_given() {
    let server = Server::get().await;
    let port = server.port.to_string();
    let env = [
        ("PGHOST", server.socket_folder.as_str()),
        ("PGPORT", port.as_str()),
        ("PGUSER", "postgres"),
    ];
    for conninfo in ["postgres:///postgres", "postgres", ""] {
        let (code, message) = status(&["-d", conninfo], &env);
        assert_eq!((code, message.as_str()), (Some(0), ""), "{conninfo:?}");
    }
    let uri = format!(
        "postgresql:///postgres?host={}&port={port}&user=postgres",
        server.socket_folder
    );
    assert_eq!(status(&["-d", &uri], &[]), (Some(0), String::new()));
}

/// Connects with `conninfo` to the server on 127.0.0.1; the TLS state of the session.
async fn tls_of(conninfo: &str, verification: &TlsVerification) -> Result<bool, Error> {
    let client = connect_client(conninfo, verification).await?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(Error::Query)?;
    Ok(row.get(0))
}

#[tokio::test]
async fn every_sslmode_behaves_as_in_libpq() {
    let server = Server::get().await;
    let base = format!("port={} user=postgres dbname=postgres", server.port);
    let ca = server.file("ca.crt");
    let other_ca = server.file("other-ca.crt");
    let default = TlsVerification::default();
    let connect = |extra: String| {
        let conninfo = format!("{base} {extra}");
        async move { tls_of(&conninfo, &TlsVerification::default()).await }
    };

    // The server's certificate is self-signed by the cluster's CA: prefer and require
    // encrypt without checking it, as libpq does.
    assert!(connect("host=127.0.0.1".into()).await.unwrap());
    assert!(connect("host=127.0.0.1 sslmode=require".into())
        .await
        .unwrap());
    assert!(!connect("host=127.0.0.1 sslmode=disable".into())
        .await
        .unwrap());
    assert!(!connect(format!("host={}", server.socket_folder))
        .await
        .unwrap());
    for host in ["localhost", "127.0.0.1"] {
        let full = format!("host={host} sslmode=verify-full sslrootcert={ca}");
        assert!(connect(full).await.unwrap(), "{host}");
    }

    // A name the certificate does not hold: verify-full refuses, verify-ca accepts.
    let elsewhere = "host=db.elsewhere.example hostaddr=127.0.0.1";
    let refused = connect(format!("{elsewhere} sslmode=verify-full sslrootcert={ca}"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("does not name host \"db.elsewhere.example\"")
            && refused.contains("sslmode=verify-ca"),
        "{refused}"
    );
    assert!(
        connect(format!("{elsewhere} sslmode=verify-ca sslrootcert={ca}"))
            .await
            .unwrap()
    );

    // Another CA: refused by verify-full and, the root file given, by require too.
    for mode in ["verify-full", "verify-ca", "require"] {
        let refused = connect(format!(
            "host=localhost sslmode={mode} sslrootcert={other_ca}"
        ))
        .await
        .unwrap_err()
        .to_string();
        assert!(
            refused.contains(&format!(
                "is not signed by the CA certificates of \"{other_ca}\""
            )) && refused.contains("set sslrootcert"),
            "{mode}: {refused}"
        );
    }
    // The crate's override wins over sslmode.
    let checked_elsewhere = format!("host=localhost sslmode=verify-full sslrootcert={other_ca}");
    assert!(tls_of(
        &format!("{base} {checked_elsewhere}"),
        &TlsVerification::NoVerification
    )
    .await
    .unwrap());
    let missing = tls_of(
        &format!("{base} host=localhost sslmode=verify-full"),
        &default,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(missing.contains("needs a root certificate"), "{missing}");
}

#[tokio::test]
async fn a_client_certificate_authenticates_its_role() {
    let server = Server::get().await;
    let folder = Folder::new("client_key");
    let key_text = std::fs::read_to_string(server.tls.join("client.key")).unwrap();
    let key = folder.write("client.key", &key_text, 0o600);
    let base = format!(
        "host=localhost port={} user={CERTIFICATE_ROLE} dbname=postgres sslmode=verify-full sslrootcert={}",
        server.port,
        server.file("ca.crt")
    );
    let with_certificate = format!(
        "{base} sslcert={} sslkey={}",
        server.file("client.crt"),
        key.display()
    );
    let client = connect_client(&with_certificate, &TlsVerification::default())
        .await
        .unwrap();
    let row = client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), CERTIFICATE_ROLE);

    let without = connect_client(&base, &TlsVerification::default())
        .await
        .expect_err("the server requires a certificate of this role")
        .to_string();
    assert!(without.contains("certificate"), "{without}");

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let open_key = connect_client(&with_certificate, &TlsVerification::default())
        .await
        .expect_err("a key others can read is refused")
        .to_string();
    assert!(
        open_key.contains(&format!(
            "sslkey \"{}\" has group or world access",
            key.display()
        )),
        "{open_key}"
    );
}

#[tokio::test]
async fn a_wal_consumer_streams_over_verified_tls() {
    let server = Server::get().await;
    let db = support::DurableDatabase::create_wal("tls", 3).await;
    let config: Config = db.url.parse().unwrap();
    let conninfo = format!(
        "host=localhost port={} user=postgres dbname={} sslmode=verify-full sslrootcert={}",
        server.port,
        config.get_dbname().unwrap(),
        server.file("ca.crt")
    );
    let mut consumer = WalConsumer::builder(&conninfo, "tls_reader")
        .channel("items")
        .connect()
        .await
        .unwrap();
    db.client
        .batch_execute("UPDATE items SET version = version + 1 WHERE id = 2")
        .await
        .unwrap();
    match consumer.recv_timeout(Duration::from_secs(20)).await {
        Ok(WalEvent::Change { change, message }) => {
            assert_eq!(change.new.as_ref().unwrap()["version"], 1);
            consumer.ack(&message);
        }
        other => panic!("expected the change, got {other:?}"),
    }
    let row = server
        .admin
        .query_one(
            "SELECT s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)
             WHERE r.application_name = 'column-notify tls_reader'",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "the replication stream is encrypted");
    drop(consumer);
    assert!(
        WalConsumer::drop_consumer(&conninfo, "tls_reader", &TlsVerification::default())
            .await
            .unwrap()
    );
}
