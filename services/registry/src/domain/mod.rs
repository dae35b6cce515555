//! The registry's rules, free of I/O: what a valid agency is, who may do what.

pub mod agency;
