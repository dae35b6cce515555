//! The rules of each SelectorKind. Each `normalize` receives a value already trimmed and
//! checked by [`crate::text::checked_value`] and returns `(normalised region, normalised value)`.

pub(crate) mod address;
pub(crate) mod bank;
pub(crate) mod crypto;
pub(crate) mod email;
pub(crate) mod identification;
pub(crate) mod ip;
pub(crate) mod phone;
mod phone_validity;
pub(crate) mod vehicle;
pub(crate) mod weapon;
