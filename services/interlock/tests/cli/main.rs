//! The real `interlock` binary run against a real mesh: operator commands, records ingest and
//! audit checkpoints. One test binary, for the same reason as `tests/tests/mesh`.

mod audit_checkpoint;
mod operator;
mod records;
