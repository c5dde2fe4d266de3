//! The password file (`passfile`, `PGPASSFILE`, `~/.pgpass`), read when no password is given:
//! lines of `hostname:port:database:username:password`, `*` matching anything, `\` escaping
//! `:` and `\`. As in libpq, a file that the group or others can read is ignored.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// What a line is matched against.
pub(crate) struct PasswordLookup<'a> {
    /// The host name, or the socket folder of a Unix-domain connection.
    pub host: &'a str,
    pub port: u16,
    pub dbname: &'a str,
    pub user: &'a str,
}

/// The password of the first matching line, if the file exists, is private and has one.
pub(crate) fn find_password(file: &Path, lookup: &PasswordLookup<'_>) -> Option<String> {
    let metadata = std::fs::metadata(file).ok()?;
    if !metadata.is_file() || metadata.permissions().mode() & 0o077 != 0 {
        return None;
    }
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| matching_password(line, lookup))
}

fn matching_password(line: &str, lookup: &PasswordLookup<'_>) -> Option<String> {
    let fields = split_fields(line);
    let [host, port, dbname, user, password] = <[String; 5]>::try_from(fields).ok()?;
    // `localhost` also stands for a Unix-domain connection.
    let host_matches =
        host == "*" || host == lookup.host || (host == "localhost" && lookup.host.starts_with('/'));
    let matches = |field: &str, value: &str| field == "*" || field == value;
    (host_matches
        && matches(&port, &lookup.port.to_string())
        && matches(&dbname, lookup.dbname)
        && matches(&user, lookup.user))
    .then_some(password)
}

/// The `:`-separated fields of a line; a fifth field takes the rest of the line.
fn split_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == ':' && fields.len() < 5 {
            fields.push(String::new());
            continue;
        }
        let field = fields.last_mut().expect("fields start with one");
        if c == '\\' {
            field.extend(chars.next());
        } else {
            field.push(c);
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOKUP: PasswordLookup<'static> = PasswordLookup {
        host: "db.example.com",
        port: 5432,
        dbname: "orders",
        user: "app",
    };

    #[test]
    fn the_first_matching_line_wins() {
        assert_eq!(matching_password("other:5432:orders:app:no", &LOOKUP), None);
        assert_eq!(
            matching_password("*:5432:*:app:yes", &LOOKUP).as_deref(),
            Some("yes")
        );
        assert_eq!(
            matching_password(r"db.example.com:*:orders:app:a\:b\\c:d", &LOOKUP).as_deref(),
            Some(r"a:b\c:d")
        );
        assert_eq!(matching_password("*:6432:*:*:no", &LOOKUP), None);
        assert_eq!(matching_password("*:*:*", &LOOKUP), None);
    }

    #[test]
    fn localhost_matches_a_socket_folder() {
        let socket = PasswordLookup {
            host: "/var/run/postgresql",
            ..LOOKUP
        };
        assert_eq!(
            matching_password("localhost:5432:orders:app:yes", &socket).as_deref(),
            Some("yes")
        );
    }
}
