//! The deconfliction rules, free of I/O: geometry of operations, the published matching rules,
//! what a registration keeps, and the index that finds conflicts.

pub mod conflict;
pub mod geo;
pub mod index;
pub mod registration;
pub mod rules;
