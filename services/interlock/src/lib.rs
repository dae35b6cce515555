//! The `interlock` binary as a library, so tests start exactly what operators run.
//!
//! [`serve::Mesh`] is the one serve path: it adds every enabled service to one tonic server with
//! health, reflection, tracing and authentication, whether that is the whole mesh on the embedded
//! default or one service of a Kubernetes deployment.

pub mod audit_cli;
pub mod cli;
pub mod config;
pub mod demo;
mod drain;
pub mod generate;
pub mod record_json;
pub mod serve;
pub mod tls;
