//! The real `interlock` binary run against a real mesh: the demo, operator commands, records
//! ingest and audit checkpoints and dead letters. One test binary, for the same reason as `tests/tests/mesh`.

mod audit_checkpoint;
mod dead_letters;
mod demo;
mod operator;
mod records;
