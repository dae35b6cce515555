//! Audit service: tamper-evident log of every access.
