//! The audit log's rules, without I/O: what a valid event is, the bytes its leaf hash covers, who
//! may see what, and the signed-note checkpoint format.

pub mod checkpoint;
pub mod event;
