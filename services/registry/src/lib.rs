//! Registry service: agencies, centers, credentials and sharing agreements.
