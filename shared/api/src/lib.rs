//! The Interlock v1 API as Rust types and tonic stubs, generated at build time from `proto/`.

/// Encoded `FileDescriptorSet` of every Interlock proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/interlock_descriptor.bin"));

macro_rules! generated {
    ($(#[$doc:meta])* $service:ident => $package:literal) => {
        $(#[$doc])*
        pub mod $service {
            #[allow(clippy::all, clippy::pedantic)]
            pub mod v1 {
                tonic::include_proto!($package);
            }
        }
    };
}

generated!(
    /// Shared vocabulary: categories, sensitivity, purposes, caveats, selectors, persons, contacts.
    common => "interlock.common.v1"
);
generated!(
    /// Agencies, centers, credentials, agreements, grants and access tokens.
    registry => "interlock.registry.v1"
);
generated!(
    /// Contributed records and reads under the sharing agreements.
    records => "interlock.records.v1"
);
generated!(
    /// Targets, operations, conflicts and their notifications.
    deconfliction => "interlock.deconfliction.v1"
);
generated!(
    /// The tamper-evident audit log.
    audit => "interlock.audit.v1"
);
