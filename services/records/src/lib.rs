//! Records service: contributed records and every read under the sharing agreements.
