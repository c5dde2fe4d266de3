//! Installing a watch: the spec and its trigger-argument codec, the checks of the table,
//! the trigger's DDL and name, and the catalog of watches and durable channels.

pub mod catalog;
pub mod durable_channels;
pub mod events;
pub mod filter;
pub mod install;
pub mod replacement;
pub mod spec;
pub mod trigger_naming;
