//! What SQL calls: the trigger function, and the event triggers that keep watches in step
//! with the schema. (`watch_column` and friends are declared in `watch/install.rs`.)

pub mod schema_changes;
pub mod trigger;
