//! The registry's rules, free of I/O: what valid agencies, credentials, centers and agreements
//! are, how agreements move through their lifecycle, and which grants they compile to.

pub mod agency;
pub mod agreement;
pub mod center;
pub mod credential;
pub mod grants;
pub mod user;
