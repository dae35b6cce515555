//! Cross-service tests over real gRPC, one module per service plus the foundation. They are one
//! test binary so the workspace links one large executable instead of six (link time and disk
//! dominate a cold CI run on two cores).

mod audit;
mod audit_outage;
mod deconfliction;
mod foundation;
mod records;
mod registry;
mod tls;
