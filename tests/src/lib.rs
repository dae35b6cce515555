//! Cross-service integration tests over real gRPC.
