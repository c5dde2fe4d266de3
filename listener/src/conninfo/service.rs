//! Connection service files (`service=name`, `PGSERVICE`): the per-user file
//! (`PGSERVICEFILE`, or `~/.pg_service.conf`) is searched first, then the system-wide
//! `pg_service.conf` in `PGSYSCONFDIR` (Debian's libpq: `/etc/postgresql-common`).

use std::path::{Path, PathBuf};

use super::keywords::check_keyword;
use super::Environment;

/// The system-wide folder when `PGSYSCONFDIR` is not set, as Debian's libpq has it.
const SYSTEM_CONFIG_DIR: &str = "/etc/postgresql-common";

/// The keyword/value pairs of service `name`, from the first file that defines it.
pub(crate) fn service_parameters(
    name: &str,
    environment: &Environment,
) -> Result<Vec<(String, String)>, String> {
    let user_file = environment
        .var("PGSERVICEFILE")
        .map(PathBuf::from)
        .or_else(|| environment.home().map(|home| home.join(".pg_service.conf")));
    let system_file = Path::new(
        &environment
            .var("PGSYSCONFDIR")
            .unwrap_or_else(|| SYSTEM_CONFIG_DIR.to_owned()),
    )
    .join("pg_service.conf");
    for file in user_file.iter().chain([&system_file]) {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => {
                return Err(format!(
                    "cannot read service file \"{}\": {error}",
                    file.display()
                ))
            }
        };
        if let Some(parameters) = section(&text, name, file)? {
            return Ok(parameters);
        }
    }
    Err(format!(
        "definition of service \"{name}\" not found (looked in {})",
        user_file
            .iter()
            .chain([&system_file])
            .map(|file| format!("\"{}\"", file.display()))
            .collect::<Vec<_>>()
            .join(" and ")
    ))
}

/// The pairs under `[name]` in an INI-style service file, or `None` without that section.
fn section(text: &str, name: &str, file: &Path) -> Result<Option<Vec<(String, String)>>, String> {
    let mut in_section = false;
    let mut found = None;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            if found.is_some() {
                break;
            }
            in_section = header.strip_suffix(']') == Some(name);
            if in_section {
                found = Some(Vec::new());
            }
            continue;
        }
        let Some(parameters) = found.as_mut().filter(|_| in_section) else {
            continue;
        };
        let mistake = |what: String| {
            format!(
                "syntax error in service file \"{}\", line {}: {what}",
                file.display(),
                number + 1
            )
        };
        let Some((keyword, value)) = line.split_once('=') else {
            return Err(mistake("no \"=\"".to_owned()));
        };
        let keyword = keyword.trim();
        if keyword == "service" {
            return Err(mistake(
                "nested \"service\" specifications are not supported".to_owned(),
            ));
        }
        check_keyword(keyword).map_err(mistake)?;
        parameters.push((keyword.to_owned(), value.trim().to_owned()));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_named_section_only() {
        let text = "# services\n[other]\nhost=elsewhere\n\n[orders]\nhost = db.example.com\nport=6432\n[later]\nuser=x\n";
        assert_eq!(
            section(text, "orders", Path::new("f")).unwrap(),
            Some(vec![
                ("host".to_owned(), "db.example.com".to_owned()),
                ("port".to_owned(), "6432".to_owned()),
            ])
        );
        assert_eq!(section(text, "missing", Path::new("f")).unwrap(), None);
    }

    #[test]
    fn mistakes_name_the_file_and_line() {
        assert_eq!(
            section("[a]\nhost\n", "a", Path::new("/etc/s.conf")).unwrap_err(),
            "syntax error in service file \"/etc/s.conf\", line 2: no \"=\""
        );
        assert_eq!(
            section("[a]\ncolour=red\n", "a", Path::new("s")).unwrap_err(),
            "syntax error in service file \"s\", line 2: invalid connection option \"colour\""
        );
    }
}
