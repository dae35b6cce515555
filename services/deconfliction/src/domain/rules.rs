//! The published matching rules: default radius and time buffer per operation type, target
//! lifetime, person-matching threshold, escalation delay and request limits. `GetMatchingRules`
//! returns exactly these, so agencies know what counts as a conflict.

use std::collections::BTreeMap;

use interlock_api::deconfliction::v1::OperationType;

pub const MINUTE_US: i64 = 60_000_000;
pub const DAY_US: i64 = 24 * 60 * MINUTE_US;

#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    /// Per operation type: (default radius in metres, time buffer).
    pub operation_types: BTreeMap<i32, (u32, i64)>,
    pub max_radius_m: u32,
    pub max_operation_duration_us: i64,
    pub target_lifetime_us: i64,
    pub max_target_lifetime_us: i64,
    pub person_score_threshold: f32,
    pub escalation_after_us: i64,
    pub max_selectors_per_target: usize,
    pub max_persons_per_target: usize,
    pub max_targets_per_check: usize,
    pub max_operations_per_check: usize,
    pub max_note_chars: usize,
}

impl Default for Rules {
    fn default() -> Self {
        use OperationType as T;
        let operation_types = [
            (T::SearchWarrant, 250, 60),
            (T::ArrestWarrant, 250, 60),
            (T::Raid, 500, 120),
            (T::UndercoverMeet, 1_000, 120),
            (T::BuyBust, 800, 90),
            (T::ControlledBuy, 800, 90),
            (T::Reversal, 800, 90),
            (T::Surveillance, 1_500, 60),
            (T::Sweep, 2_000, 120),
            (T::ControlledDelivery, 1_500, 120),
            (T::Other, 500, 60),
        ]
        .into_iter()
        .map(|(kind, radius, buffer_minutes)| (kind as i32, (radius, buffer_minutes * MINUTE_US)))
        .collect();
        Rules {
            operation_types,
            max_radius_m: 50_000,
            max_operation_duration_us: 30 * DAY_US,
            target_lifetime_us: 730 * DAY_US,
            max_target_lifetime_us: 730 * DAY_US,
            person_score_threshold: interlock_selectors::DEFAULT_SCORE_THRESHOLD,
            escalation_after_us: 30 * MINUTE_US,
            max_selectors_per_target: 500,
            max_persons_per_target: 50,
            max_targets_per_check: 100,
            max_operations_per_check: 50,
            max_note_chars: 2_000,
        }
    }
}

impl Rules {
    /// (default radius, buffer) for an operation type; unknown types get the `OTHER` rule.
    pub fn for_type(&self, operation_type: i32) -> (u32, i64) {
        self.operation_types
            .get(&operation_type)
            .or_else(|| self.operation_types.get(&(OperationType::Other as i32)))
            .copied()
            .unwrap_or((500, 60 * MINUTE_US))
    }
}
