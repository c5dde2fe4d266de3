//! A leaf library: values written as JSON exactly as PostgreSQL's JSON functions write them.

pub mod array;
pub mod encoder;
pub mod text;
