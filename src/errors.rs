//! The errors of the extension, each with a deliberate SQLSTATE and a hint the user can act on.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

use crate::pg::server_text;

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
    #[error("relation {relation} does not exist")]
    UnknownRelation { relation: String },
    #[error("\"{relation}\" is not a table")]
    NotATable {
        relation: String,
        kind: &'static str,
    },
    #[error("must be owner of table {table}")]
    NotOwner { table: String },
    #[error("column \"{column}\" of relation \"{table}\" does not exist")]
    UnknownColumn { table: String, column: String },
    #[error("cannot watch system column \"{column}\"")]
    SystemColumn { column: String },
    #[error("cannot watch virtual generated column \"{column}\"")]
    VirtualGeneratedColumn { column: String },
    #[error("table \"{table}\" has no primary key")]
    NoPrimaryKey { table: String },
    #[error("cannot watch system catalog \"{table}\"")]
    SystemCatalog { table: String },
    #[error("cannot watch temporary table \"{table}\"")]
    TemporaryTable { table: String },
    #[error("durable channel \"{channel}\" belongs to role {owner}")]
    DurableChannelTaken {
        channel: String,
        owner: String,
        table: String,
    },
    #[error("unknown delivery \"{name}\"")]
    UnknownDelivery { name: String },
    #[error("delivery => 'wal' needs wal_level = logical")]
    WalLevelNotLogical,
    #[error("a WAL watch cannot also be durable")]
    DurableOverWal,
    #[error("a WAL watch cannot be batched")]
    BatchOverWal,
    #[error("filter must not be empty")]
    EmptyFilter,
    #[error("a filter must be one expression")]
    FilterNotOneExpression,
    #[error("a filter cannot use system column \"{column}\"")]
    FilterSystemColumn { column: String },
    #[error("invalid filter: {message}")]
    InvalidFilter {
        code: PgSqlErrorCode,
        message: String,
    },
    #[error("channel name must not be empty")]
    EmptyChannel,
    #[error("channel name \"{channel}\" is too long ({bytes} bytes)")]
    ChannelTooLong { channel: String, bytes: usize },
}

impl WatchError {
    /// A filter PostgreSQL refused, with its SQLSTATE.
    pub fn invalid_filter(failure: crate::pg::subtransaction::Failure) -> Self {
        Self::InvalidFilter {
            code: failure.code,
            message: failure.message,
        }
    }

    fn sqlstate(&self) -> PgSqlErrorCode {
        use PgSqlErrorCode::*;
        match self {
            Self::NullArgument(_) | Self::NullElement(_) => ERRCODE_NULL_VALUE_NOT_ALLOWED,
            Self::EmptyList(_) | Self::UnknownEvent { .. } | Self::ConflictingOptions(..) => {
                ERRCODE_INVALID_PARAMETER_VALUE
            }
            Self::DuplicateColumn { .. } => ERRCODE_DUPLICATE_COLUMN,
            Self::UnknownRelation { .. } => ERRCODE_UNDEFINED_TABLE,
            Self::NotATable { .. } => ERRCODE_WRONG_OBJECT_TYPE,
            Self::NotOwner { .. }
            | Self::SystemCatalog { .. }
            | Self::DurableChannelTaken { .. } => ERRCODE_INSUFFICIENT_PRIVILEGE,
            Self::TemporaryTable { .. } => ERRCODE_FEATURE_NOT_SUPPORTED,
            Self::UnknownColumn { .. } => ERRCODE_UNDEFINED_COLUMN,
            Self::SystemColumn { .. } | Self::VirtualGeneratedColumn { .. } => {
                ERRCODE_FEATURE_NOT_SUPPORTED
            }
            Self::NoPrimaryKey { .. } => ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            Self::EmptyChannel | Self::ChannelTooLong { .. } => ERRCODE_INVALID_PARAMETER_VALUE,
            Self::EmptyFilter => ERRCODE_INVALID_PARAMETER_VALUE,
            Self::FilterNotOneExpression => ERRCODE_SYNTAX_ERROR,
            Self::UnknownDelivery { .. } | Self::DurableOverWal | Self::BatchOverWal => {
                ERRCODE_INVALID_PARAMETER_VALUE
            }
            Self::WalLevelNotLogical => ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            Self::FilterSystemColumn { .. } => ERRCODE_FEATURE_NOT_SUPPORTED,
            Self::InvalidFilter { code, .. } => *code,
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
            Self::SystemCatalog { .. } => {
                "System catalogs cannot have triggers; watch a table of your own.".into()
            }
            Self::TemporaryTable { .. } => {
                "A temporary table ends with its session, which no watch can follow: \
                 watch a permanent or unlogged table."
                    .into()
            }
            Self::DurableChannelTaken { table, .. } => format!(
                "A durable channel is fed by the tables of one role only, so that no other \
                 role can write into its log; the owner of {table} must choose another channel."
            ),
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
            Self::EmptyFilter => "Pass NULL for no filter.".into(),
            Self::UnknownDelivery { .. } => "Delivery is 'notify' (the default) or 'wal'.".into(),
            Self::WalLevelNotLogical => {
                "Set wal_level = logical in postgresql.conf and restart the server, or keep \
                 delivery => 'notify'."
                    .into()
            }
            Self::BatchOverWal => {
                "Batches save NOTIFY's cost per notification; a WAL message costs little: leave \
                 batch out with delivery => 'wal'."
                    .into()
            }
            Self::DurableOverWal => {
                "WAL messages are kept by each consumer's replication slot until it confirms \
                 them: leave durable out with delivery => 'wal'."
                    .into()
            }
            Self::FilterNotOneExpression | Self::InvalidFilter { .. } => {
                "A filter is one boolean expression over old and new, as in CREATE TRIGGER ... \
                 WHEN: new.status = 'active', say. Names outside pg_catalog are qualified \
                 with their schema (public.f(new.x))."
                    .into()
            }
            Self::FilterSystemColumn { .. } => {
                "The rows a watch sees have no system columns: use the table's own columns.".into()
            }
            Self::ChannelTooLong { .. } => format!(
                "PostgreSQL channel names must be shorter than {} bytes: name a shorter one with \
                 channel => '...' (the default is <table>_<columns>_changed).",
                crate::delivery::notify::MAX_CHANNEL_BYTES + 1
            ),
        })
    }

    /// Raises the error in PostgreSQL, aborting the current statement.
    pub fn report(self) -> ! {
        let message = server_text::for_message(self.to_string());
        let mut report = ErrorReport::new(self.sqlstate(), message, "pg_column_notify");
        if let Some(hint) = self.hint() {
            report = report.set_hint(server_text::for_message(hint));
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
            server_text::for_message(self.to_string()),
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
    warn_during_write(
        PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
        format!("notify_column_changed: watched column \"{column}\" of {table} no longer exists"),
        "The trigger names a column the table no longer has (watches follow renames, \
         hand-made triggers do not): watch the table again with watch_column() naming \
         columns it has, or recreate the trigger.",
    );
}

/// A PostgreSQL error raised inside the extension's SPI calls reaches the client as
/// PostgreSQL raised it. pgrx would add a Rust backtrace to its DETAIL whenever the server
/// runs with `RUST_BACKTRACE` set; `RUST_LIB_BACKTRACE=0` (which takes precedence for
/// captured backtraces) keeps them out, unless the server's environment sets it itself.
pub fn keep_backtraces_out_of_errors() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: a backend runs one thread, and this runs as the library is loaded,
        // before anything of the extension could capture a backtrace.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
}

/// Reports a WARNING raised while a write runs. In a SQL_ASCII database the statement in
/// its CONTEXT may hold bytes the client's encoding cannot take, and PostgreSQL then fails
/// the write while sending the message: there it goes to the server log only.
pub fn warn_during_write(code: PgSqlErrorCode, message: String, hint: &str) {
    let level = if server_text::is_sql_ascii() {
        PgLogLevel::LOG_SERVER_ONLY
    } else {
        PgLogLevel::WARNING
    };
    ErrorReport::new(
        code,
        server_text::for_message(message),
        "notify_column_changed",
    )
    .set_hint(hint)
    .report(level);
}
