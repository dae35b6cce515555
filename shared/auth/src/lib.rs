//! Identity for every call: access tokens, the caller, and the tower layer that enforces them.
