//! What a watch is, and how it travels in the trigger's arguments: the channel, the watched
//! columns, then (after an empty argument, which no column name can be) options written as
//! `name=<JSON array of column names>`, `durable=true`, `metadata=false`, `batch=true`,
//! `delivery="wal"` or `filter=<JSON string>` (the row filter, as `watch/filter.rs`
//! normalises it):
//!
//! ```sql
//! EXECUTE FUNCTION notify_column_changed('users_changed', 'email', 'plan',
//!                                        '', 'exclude=["password_hash"]',
//!                                        'filter="(new.plan <> ''free''::text)"')
//! ```
//!
//! The trigger decodes it once per statement; `watch_column` encodes it when it installs
//! the trigger. One format, read and written here only.

use std::fmt;

/// How a watch's changes reach their consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// `NOTIFY` at commit (the default).
    #[default]
    Notify,
    /// A transactional logical message in the WAL, read through a replication slot: no
    /// commit-time lock, decoded in commit order, gone with a rollback.
    Wal,
}

impl Delivery {
    /// The name SQL uses (`delivery => 'wal'`) and the catalog stores.
    pub fn name(self) -> &'static str {
        match self {
            Self::Notify => "notify",
            Self::Wal => "wal",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "notify" => Some(Self::Notify),
            "wal" => Some(Self::Wal),
            _ => None,
        }
    }
}

/// The channel, the watched columns and the payload options of one watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchSpec {
    pub channel: String,
    pub columns: Vec<String>,
    /// Columns that identify a row, instead of the primary key.
    pub key: Option<Vec<String>>,
    /// Only these columns appear in `old` and `new`.
    pub include: Option<Vec<String>>,
    /// These columns are left out of `old` and `new`.
    pub exclude: Option<Vec<String>>,
    /// Every event is also appended to the extension's event log (`durable=true`).
    pub durable: bool,
    /// The payload carries `op`, `schema`, `table`, `partition` and `changed`; without them
    /// (`metadata=false`) it is the reference trigger's `{"id", "old", "new"}`, and smaller.
    pub metadata: bool,
    /// The changes of one trigger call are packed into as few notifications as fit,
    /// `{"changes":[…]}` (`batch=true`); made for statement-level triggers.
    pub batch: bool,
    /// NOTIFY, or logical messages in the WAL (`delivery="wal"`).
    pub delivery: Delivery,
    /// The row filter: a boolean expression over `old` and `new`; a change is sent only
    /// when it is true.
    pub filter: Option<String>,
}

impl Default for WatchSpec {
    fn default() -> Self {
        Self {
            channel: String::new(),
            columns: Vec::new(),
            key: None,
            include: None,
            exclude: None,
            durable: false,
            metadata: true,
            batch: false,
            delivery: Delivery::Notify,
            filter: None,
        }
    }
}

/// Trigger arguments that do not describe a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgumentError {
    /// No channel, or no column.
    Missing,
    /// An option that is not `name=[...]` with a known name.
    BadOption(String),
}

impl fmt::Display for ArgumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("a channel and at least one column are required"),
            Self::BadOption(option) => write!(
                f,
                "unknown option argument \"{option}\" (expected key=, include= or exclude= \
                 followed by a JSON array of column names, durable=true, metadata=false, batch=true, \
                 delivery=\"wal\" or filter= followed by a JSON string)"
            ),
        }
    }
}

const SEPARATOR: &str = "";

impl WatchSpec {
    /// Decodes trigger arguments.
    pub fn from_arguments<S: AsRef<str>>(arguments: &[S]) -> Result<Self, ArgumentError> {
        let mut arguments = arguments.iter().map(AsRef::as_ref);
        let channel = arguments.next().ok_or(ArgumentError::Missing)?.to_owned();
        let mut spec = WatchSpec {
            channel,
            ..WatchSpec::default()
        };
        for argument in arguments.by_ref() {
            if argument == SEPARATOR {
                break;
            }
            spec.columns.push(argument.to_owned());
        }
        if spec.columns.is_empty() {
            return Err(ArgumentError::Missing);
        }
        for option in arguments {
            let bad = || ArgumentError::BadOption(option.to_owned());
            let (name, value) = option.split_once('=').ok_or_else(bad)?;
            let flag = match name {
                "durable" => Some(&mut spec.durable),
                "metadata" => Some(&mut spec.metadata),
                "batch" => Some(&mut spec.batch),
                _ => None,
            };
            if let Some(flag) = flag {
                *flag = serde_json::from_str(value).map_err(|_| bad())?;
                continue;
            }
            if name == "delivery" {
                let delivery: String = serde_json::from_str(value).map_err(|_| bad())?;
                spec.delivery = Delivery::from_name(&delivery).ok_or_else(bad)?;
                continue;
            }
            if name == "filter" {
                spec.filter = Some(serde_json::from_str(value).map_err(|_| bad())?);
                continue;
            }
            let names: Vec<String> = serde_json::from_str(value).map_err(|_| bad())?;
            let slot = match name {
                "key" => &mut spec.key,
                "include" => &mut spec.include,
                "exclude" => &mut spec.exclude,
                _ => return Err(bad()),
            };
            *slot = Some(names);
        }
        Ok(spec)
    }

    /// Encodes the spec as trigger arguments (the inverse of [`WatchSpec::from_arguments`]).
    pub fn to_arguments(&self) -> Vec<String> {
        let mut arguments = vec![self.channel.clone()];
        arguments.extend(self.columns.iter().cloned());
        let options = [
            ("key", &self.key),
            ("include", &self.include),
            ("exclude", &self.exclude),
        ];
        let mut separated = false;
        for (name, value) in options {
            if let Some(names) = value {
                if !separated {
                    arguments.push(SEPARATOR.to_owned());
                    separated = true;
                }
                let json = serde_json::to_string(names).expect("a list of strings serialises");
                arguments.push(format!("{name}={json}"));
            }
        }
        let flags = [
            (self.durable, "durable=true"),
            (!self.metadata, "metadata=false"),
            (self.batch, "batch=true"),
            (self.delivery == Delivery::Wal, r#"delivery="wal""#),
        ];
        for (set, argument) in flags {
            if set {
                if !separated {
                    arguments.push(SEPARATOR.to_owned());
                    separated = true;
                }
                arguments.push(argument.to_owned());
            }
        }
        if let Some(filter) = &self.filter {
            if !separated {
                arguments.push(SEPARATOR.to_owned());
            }
            let json = serde_json::to_string(filter).expect("a string serialises");
            arguments.push(format!("filter={json}"));
        }
        arguments
    }

    /// Every column name the spec mentions, with the role it plays there.
    pub fn mentioned_columns(&self) -> Vec<(&'static str, &str)> {
        let mut mentioned: Vec<_> = self
            .columns
            .iter()
            .map(|name| ("column", name.as_str()))
            .collect();
        for (role, names) in [
            ("key", &self.key),
            ("include", &self.include),
            ("exclude", &self.exclude),
        ] {
            mentioned.extend(names.iter().flatten().map(|name| (role, name.as_str())));
        }
        mentioned
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn arguments_round_trip() {
        let spec = WatchSpec {
            channel: "users".into(),
            columns: vec!["email".into(), "we\"ird, =name".into()],
            key: Some(vec!["id".into()]),
            include: None,
            exclude: Some(vec!["password_hash".into()]),
            durable: true,
            metadata: false,
            batch: true,
            delivery: Delivery::Wal,
            filter: Some("(new.plan <> 'free, \"=x'::text)".into()),
        };
        let arguments = spec.to_arguments();
        assert_eq!(arguments[3], "");
        assert_eq!(
            arguments[6..10],
            [
                "durable=true",
                "metadata=false",
                "batch=true",
                r#"delivery="wal""#
            ]
        );
        assert_eq!(
            arguments[10],
            r#"filter="(new.plan <> 'free, \"=x'::text)""#
        );
        assert_eq!(WatchSpec::from_arguments(&arguments), Ok(spec));
    }

    #[pg_test]
    fn one_flag_alone_round_trips() {
        let spec = WatchSpec {
            channel: "c".into(),
            columns: vec!["a".into()],
            metadata: false,
            ..WatchSpec::default()
        };
        let arguments = spec.to_arguments();
        assert_eq!(arguments, ["c", "a", "", "metadata=false"]);
        assert_eq!(WatchSpec::from_arguments(&arguments), Ok(spec));
    }

    #[pg_test]
    fn plain_arguments_have_no_options() {
        let spec = WatchSpec::from_arguments(&["c", "a", "b"]).unwrap();
        assert_eq!(spec.columns, ["a", "b"]);
        assert_eq!(spec.to_arguments(), ["c", "a", "b"]);
    }

    #[pg_test]
    fn bad_arguments_are_refused() {
        assert_eq!(
            WatchSpec::from_arguments::<&str>(&[]),
            Err(ArgumentError::Missing)
        );
        assert_eq!(
            WatchSpec::from_arguments(&["c"]),
            Err(ArgumentError::Missing)
        );
        assert_eq!(
            WatchSpec::from_arguments(&["c", "", "key=[\"a\"]"]),
            Err(ArgumentError::Missing)
        );
        assert!(matches!(
            WatchSpec::from_arguments(&["c", "a", "", "colour=[\"x\"]"]),
            Err(ArgumentError::BadOption(_))
        ));
        assert!(matches!(
            WatchSpec::from_arguments(&["c", "a", "", "key=id"]),
            Err(ArgumentError::BadOption(_))
        ));
        assert!(matches!(
            WatchSpec::from_arguments(&["c", "a", "", "metadata=no"]),
            Err(ArgumentError::BadOption(_))
        ));
        assert!(matches!(
            WatchSpec::from_arguments(&["c", "a", "", r#"delivery="pigeon""#]),
            Err(ArgumentError::BadOption(_))
        ));
    }
}
