//! Deconfliction service: targets, operations and record selectors checked for conflicts.
