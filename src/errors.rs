//! The errors of the extension, each with a deliberate SQLSTATE and a hint the user can act on.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

/// Why `watch_column` and friends refuse their input. Raised before anything is changed.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("argument \"{0}\" must not be null")]
    NullArgument(&'static str),
    #[error("argument \"{0}\" must not contain NULL")]
    NullElement(&'static str),
    #[error("argument \"{0}\" must not be empty")]
    EmptyList(&'static str),
    #[error("column \"{column}\" is listed twice")]
    DuplicateColumn { column: String },
    #[error("unknown event \"{event}\"")]
    UnknownEvent { event: String },
    #[error("options \"{0}\" and \"{1}\" cannot be combined")]
    ConflictingOptions(&'static str, &'static str),
    #[error("a batched watch takes exactly one event")]
    BatchOfSeveralEvents,
    #[error("relation {relation} does not exist")]
    UnknownRelation { relation: String },
    #[error("\"{relation}\" is not a table")]
    NotATable {
        relation: String,
        kind: &'static str,
    },
    #[error("must be owner of table {table}")]
    NotOwner { table: String },
    #[error("column \"{column}\" of relation {table} does not exist")]
    UnknownColumn { table: String, column: String },
    #[error("cannot watch system column \"{column}\"")]
    SystemColumn { column: String },
    #[error("cannot watch virtual generated column \"{column}\"")]
    VirtualGeneratedColumn { column: String },
    #[error("table {table} has no primary key")]
    NoPrimaryKey { table: String },
    #[error("channel name must not be empty")]
    EmptyChannel,
    #[error("channel name \"{channel}\" is too long ({bytes} bytes)")]
    ChannelTooLong { channel: String, bytes: usize },
}

impl WatchError {
    fn sqlstate(&self) -> PgSqlErrorCode {
        use PgSqlErrorCode::*;
        match self {
            Self::NullArgument(_) | Self::NullElement(_) => ERRCODE_NULL_VALUE_NOT_ALLOWED,
            Self::EmptyList(_)
            | Self::UnknownEvent { .. }
            | Self::ConflictingOptions(..)
            | Self::BatchOfSeveralEvents => ERRCODE_INVALID_PARAMETER_VALUE,
            Self::DuplicateColumn { .. } => ERRCODE_DUPLICATE_COLUMN,
            Self::UnknownRelation { .. } => ERRCODE_UNDEFINED_TABLE,
            Self::NotATable { .. } => ERRCODE_WRONG_OBJECT_TYPE,
            Self::NotOwner { .. } => ERRCODE_INSUFFICIENT_PRIVILEGE,
            Self::UnknownColumn { .. } => ERRCODE_UNDEFINED_COLUMN,
            Self::SystemColumn { .. } | Self::VirtualGeneratedColumn { .. } => {
                ERRCODE_FEATURE_NOT_SUPPORTED
            }
            Self::NoPrimaryKey { .. } => ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            Self::EmptyChannel | Self::ChannelTooLong { .. } => ERRCODE_INVALID_PARAMETER_VALUE,
        }
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            Self::NullArgument(_) | Self::NullElement(_) => return None,
            Self::EmptyList(_) => "Name at least one.".into(),
            Self::DuplicateColumn { .. } => "Name each column once.".into(),
            Self::UnknownEvent { .. } => "Events are insert, update and delete.".into(),
            Self::ConflictingOptions(..) => {
                "Either list the columns to show (include) or the ones to hide (exclude).".into()
            }
            Self::BatchOfSeveralEvents => {
                "PostgreSQL gives a statement's changed rows to triggers of one event only: \
                 batch one event, or leave batch off."
                    .into()
            }
            Self::UnknownRelation { .. } => {
                "Check the name and the search_path, or qualify the table with its schema.".into()
            }
            Self::NotATable { kind, .. } => {
                format!("It is a {kind}; only ordinary and partitioned tables can be watched.")
            }
            Self::NotOwner { .. } => {
                "Only the owner of a table (or a superuser) can install triggers on it.".into()
            }
            Self::UnknownColumn { .. } => {
                "Column names are case-sensitive when quoted; see \\d of the table.".into()
            }
            Self::SystemColumn { .. } => "Watch a user column of the table instead.".into(),
            Self::VirtualGeneratedColumn { .. } => {
                "Its value is computed when read and is NULL in the rows triggers get: watch \
                 the columns it is computed from, or make it STORED."
                    .into()
            }
            Self::NoPrimaryKey { .. } => {
                "The payload identifies rows by their primary key: add one, or name the \
                 identifying columns with key => '{col}'."
                    .into()
            }
            Self::EmptyChannel => "Pass a channel name, or NULL for the default one.".into(),
            Self::ChannelTooLong { .. } => format!(
                "PostgreSQL channel names must be shorter than {} bytes.",
                crate::notify::MAX_CHANNEL_BYTES + 1
            ),
        })
    }

    /// Raises the error in PostgreSQL, aborting the current statement.
    pub fn report(self) -> ! {
        let mut report = ErrorReport::new(self.sqlstate(), self.to_string(), "pg_column_notify");
        if let Some(hint) = self.hint() {
            report = report.set_hint(hint);
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("an ERROR report does not return")
    }
}

/// `notify_column_changed()` was declared in a way it cannot work with. These only happen
/// for a hand-written `CREATE TRIGGER` that is wrong, so they surface at once.
#[derive(Debug, thiserror::Error)]
pub enum TriggerProtocolError {
    #[error("notify_column_changed() was not called as a trigger")]
    NotATrigger,
    #[error("notify_column_changed() must be fired on INSERT, UPDATE or DELETE")]
    WrongEvent,
    #[error("notify_column_changed() fired FOR EACH STATEMENT needs transition tables")]
    MissingTransitionTables,
    #[error("notify_column_changed() has bad trigger arguments: {0}")]
    BadArguments(String),
    #[error("channel name \"{0}\" cannot be used with NOTIFY")]
    BadChannel(String),
}

impl TriggerProtocolError {
    pub fn report(self) -> ! {
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
            self.to_string(),
            "notify_column_changed",
        )
        .set_hint(
            "Declare it as: CREATE TRIGGER ... AFTER UPDATE ON tbl FOR EACH ROW \
             EXECUTE FUNCTION notify_column_changed('channel', 'column') (or FOR EACH STATEMENT \
             with REFERENCING OLD TABLE AS o NEW TABLE AS n), or let watch_column() create it.",
        )
        .report(PgLogLevel::ERROR);
        unreachable!("an ERROR report does not return")
    }
}

/// Something about the table changed under a trigger (a watched column was dropped or
/// renamed). The write goes on; the user is told with a WARNING.
pub fn warn_missing_column(table: &str, column: &str) {
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
        format!("notify_column_changed: watched column \"{column}\" of {table} no longer exists"),
        "notify_column_changed",
    )
    .set_hint("Watch the column again under its new name with watch_column().")
    .report(PgLogLevel::WARNING);
}
