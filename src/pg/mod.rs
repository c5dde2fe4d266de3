//! Raw server interfaces the rest builds on: the function manager, built-in functions, the
//! primary key, text in the database's encoding, SQL run by the extension itself, and the
//! current memory context.

pub mod builtin_functions;
pub mod datum_image;
pub mod internal_sql;
pub mod memory_context;
pub mod names;
pub mod primary_key;
pub mod server_text;
pub mod subtransaction;
pub mod v1_call;
pub mod version;
