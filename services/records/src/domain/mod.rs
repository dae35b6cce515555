//! The records service's rules, without I/O: validating and normalising what owners write
//! ([`record`]), deciding and shaping what readers see ([`access`]), and full-text queries
//! ([`query`]).

pub mod access;
pub mod query;
pub mod record;
