//! Builders (`builder create`): `builder.toml` as pack reads it, the lifecycle per platform.

pub mod config;
pub mod lifecycle;
