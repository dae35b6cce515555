//! Times travel as `google.protobuf.Timestamp` and are stored as microseconds since the Unix epoch,
//! the precision both SQLite and PostgreSQL keep exactly.

use prost_types::Timestamp;

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

pub fn timestamp_from_micros(micros: i64) -> Timestamp {
    Timestamp { seconds: micros.div_euclid(1_000_000), nanos: (micros.rem_euclid(1_000_000) * 1_000) as i32 }
}

pub fn micros_from_timestamp(timestamp: &Timestamp) -> i64 {
    timestamp.seconds.saturating_mul(1_000_000).saturating_add(i64::from(timestamp.nanos) / 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_round_trip_including_before_the_epoch() {
        for micros in [0, 1, 1_700_000_000_123_456, -1, -1_500_000] {
            assert_eq!(micros_from_timestamp(&timestamp_from_micros(micros)), micros);
        }
        assert_eq!(timestamp_from_micros(-1), Timestamp { seconds: -1, nanos: 999_999_000 });
    }
}
