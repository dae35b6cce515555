//! The registry's rules, free of I/O: what valid agencies, credentials, centers and agreements
//! are, how agreements move through their lifecycle, and which grants they compile to.

pub mod agency;
pub mod agreement;
pub mod center;
pub mod credential;
pub mod grants;
pub mod user;

use crate::error::{Error, Result};

/// Longest reason a change may be given (suspending, resuming or revoking an agreement, an
/// agency or a credential; withdrawing an amendment; unlocking a credential).
pub const MAX_REASON_CHARS: usize = 1000;

/// An explanation (why a change is made; what an amendment changes): the others concerned read
/// it and the audit log keeps it, so it must say something.
pub fn check_explanation(field: &str, text: &str, max_chars: usize) -> Result<()> {
    if text.trim().is_empty() {
        Err(Error::invalid(field, "is required: say why, for the other parties and the audit log"))
    } else if text.chars().count() > max_chars {
        Err(Error::invalid(field, format!("must be at most {max_chars} characters")))
    } else {
        Ok(())
    }
}
