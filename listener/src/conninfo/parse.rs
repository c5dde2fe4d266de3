//! The two spellings of a libpq connection string, read into keyword/value pairs: the URI
//! (`postgresql://user:secret@host:5432/db?sslmode=require`) and the keyword/value list
//! (`host=db user=app sslmode='verify-full'`). A string that is neither (no `=`, no URI
//! prefix) is a database name, as psql reads its `-d` argument.

use super::keywords::check_keyword;

/// The keyword/value pairs of `text`, in the order given. Keywords are checked against
/// libpq's list; values are not interpreted here.
pub(crate) fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let text = text.trim();
    let pairs = if let Some(rest) = strip_uri_prefix(text) {
        parse_uri(rest)?
    } else if text.contains('=') {
        parse_keyword_values(text)?
    } else if text.is_empty() {
        Vec::new()
    } else {
        vec![("dbname".to_owned(), text.to_owned())]
    };
    for (keyword, _) in &pairs {
        check_keyword(keyword)?;
    }
    Ok(pairs)
}

fn strip_uri_prefix(text: &str) -> Option<&str> {
    text.strip_prefix("postgresql://")
        .or_else(|| text.strip_prefix("postgres://"))
}

/// `[user[:password]@][host[:port][,host[:port]...]][/dbname][?keyword=value&...]`, each part
/// percent-decoded.
fn parse_uri(rest: &str) -> Result<Vec<(String, String)>, String> {
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, dbname) = before_query.split_once('/').unwrap_or((before_query, ""));
    let mut pairs = Vec::new();
    let hosts = match authority.rsplit_once('@') {
        Some((user_info, hosts)) => {
            let (user, password) = match user_info.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (user_info, None),
            };
            push_decoded(&mut pairs, "user", user)?;
            if let Some(password) = password {
                push_decoded(&mut pairs, "password", password)?;
            }
            hosts
        }
        None => authority,
    };
    if !hosts.is_empty() {
        let mut host_list = Vec::new();
        let mut port_list = Vec::new();
        for spec in hosts.split(',') {
            let (host, port) = split_host_port(spec)?;
            host_list.push(percent_decode(host)?);
            port_list.push(port.to_owned());
        }
        if host_list.iter().any(|host| !host.is_empty()) {
            pairs.push(("host".to_owned(), host_list.join(",")));
        }
        if port_list.iter().any(|port| !port.is_empty()) {
            pairs.push(("port".to_owned(), port_list.join(",")));
        }
    }
    push_decoded(&mut pairs, "dbname", dbname)?;
    for parameter in query.split('&').filter(|parameter| !parameter.is_empty()) {
        let Some((keyword, value)) = parameter.split_once('=') else {
            return Err(format!(
                "missing \"=\" after \"{parameter}\" in the URI's query parameters"
            ));
        };
        let keyword = percent_decode(keyword)?;
        let value = percent_decode(value)?;
        // Later values win, as in libpq; a query parameter overrides the URI's own parts.
        pairs.retain(|(existing, _)| *existing != keyword);
        pairs.push((keyword, value));
    }
    Ok(pairs)
}

fn push_decoded(pairs: &mut Vec<(String, String)>, keyword: &str, raw: &str) -> Result<(), String> {
    if !raw.is_empty() {
        pairs.push((keyword.to_owned(), percent_decode(raw)?));
    }
    Ok(())
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(spec: &str) -> Result<(&str, &str), String> {
    if let Some(rest) = spec.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(format!("missing \"]\" in the URI's host \"{spec}\""));
        };
        let port = match after {
            "" => "",
            _ => after.strip_prefix(':').ok_or_else(|| {
                format!("unexpected \"{after}\" after the IPv6 address in \"{spec}\"")
            })?,
        };
        return Ok((host, port));
    }
    Ok(spec.split_once(':').unwrap_or((spec, "")))
}

fn percent_decode(raw: &str) -> Result<String, String> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = raw
                .get(index + 1..index + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| format!("invalid percent-encoded token in \"{raw}\""))?;
            if hex == 0 {
                return Err(format!("forbidden value %00 in \"{raw}\""));
            }
            decoded.push(hex);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).map_err(|_| format!("\"{raw}\" does not decode to UTF-8"))
}

/// `keyword = value` pairs separated by white space; a value is bare (a backslash escapes the
/// next character) or in single quotes (`\'` and `\\` inside).
fn parse_keyword_values(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut keyword = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            keyword.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!("missing \"=\" after \"{keyword}\""));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated quoted value of \"{keyword}\"")),
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((keyword, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_uri_with_every_part() {
        assert_eq!(
            parse("postgresql://app:s%40cret@db.example.com:6432/orders?sslmode=verify-full&application_name=mail").unwrap(),
            pairs(&[
                ("user", "app"),
                ("password", "s@cret"),
                ("host", "db.example.com"),
                ("port", "6432"),
                ("dbname", "orders"),
                ("sslmode", "verify-full"),
                ("application_name", "mail"),
            ])
        );
    }

    #[test]
    fn a_uri_without_a_host_leaves_it_to_the_defaults() {
        assert_eq!(
            parse("postgres:///orders").unwrap(),
            pairs(&[("dbname", "orders")])
        );
        assert_eq!(parse("postgres://").unwrap(), pairs(&[]));
    }

    #[test]
    fn a_uri_with_a_socket_folder_several_hosts_and_ipv6() {
        assert_eq!(
            parse("postgres://%2Fvar%2Frun%2Fpostgresql/db").unwrap(),
            pairs(&[("host", "/var/run/postgresql"), ("dbname", "db")])
        );
        assert_eq!(
            parse("postgres://a:1,[::1]:2,c/db").unwrap(),
            pairs(&[("host", "a,::1,c"), ("port", "1,2,"), ("dbname", "db")])
        );
        assert_eq!(
            parse("postgres:///db?host=/tmp").unwrap(),
            pairs(&[("dbname", "db"), ("host", "/tmp")])
        );
    }

    #[test]
    fn keyword_values_with_quotes_and_escapes() {
        assert_eq!(
            parse(r"host=db  port = 5433 password='it\'s' dbname=a\ b options='-c x=1'").unwrap(),
            pairs(&[
                ("host", "db"),
                ("port", "5433"),
                ("password", "it's"),
                ("dbname", "a b"),
                ("options", "-c x=1"),
            ])
        );
        assert_eq!(
            parse("service=orders").unwrap(),
            pairs(&[("service", "orders")])
        );
    }

    #[test]
    fn a_bare_word_is_a_database_name() {
        assert_eq!(parse("orders").unwrap(), pairs(&[("dbname", "orders")]));
        assert_eq!(parse("  ").unwrap(), pairs(&[]));
    }

    #[test]
    fn mistakes_are_named() {
        assert_eq!(
            parse("host=db colour=red").unwrap_err(),
            "invalid connection option \"colour\""
        );
        assert_eq!(
            parse("postgres://db/x?colour=red").unwrap_err(),
            "invalid connection option \"colour\""
        );
        assert_eq!(
            parse("password='open").unwrap_err(),
            "unterminated quoted value of \"password\""
        );
        assert_eq!(
            parse("postgres://db/x%zz").unwrap_err(),
            "invalid percent-encoded token in \"x%zz\""
        );
        assert_eq!(
            parse("postgres://db/x?sslmode").unwrap_err(),
            "missing \"=\" after \"sslmode\" in the URI's query parameters"
        );
    }
}
