//! The `interlock` binary as a library, so tests start exactly what operators run.
//!
//! [`serve::Mesh`] is the one serve path: it adds every enabled service to one tonic server with
//! health, reflection, tracing and authentication, whether that is the whole mesh on the embedded
//! default or one service of a Kubernetes deployment.

/// mimalloc instead of glibc's malloc for every binary that links this crate (the `interlock`
/// binary, the benches, the tests). Requests allocate on one tokio worker and free on another;
/// glibc's arenas made that 18 % of a deconfliction check's CPU and 15 % of an ingest's
/// (`perf record`, docs/benchmarks.md "Allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod audit_cli;
pub mod cli;
pub mod config;
pub mod demo;
mod drain;
pub mod generate;
pub mod record_json;
pub mod serve;
pub mod tls;
