//! Multilateral centers (the OCDETF Fusion Center, IOC-2) and their members. Membership alone
//! grants nothing: it makes an agency a party to the center's agreements, which it must sign.

use interlock_rpc::FieldViolations;
use serde::{Deserialize, Serialize};

use crate::store::{Kind, Resource};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CenterState {
    Active,
    Suspended,
}

/// One stretch of membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub join_time_us: i64,
    pub leave_time_us: Option<i64>,
}

impl Period {
    pub fn covers(&self, now_us: i64) -> bool {
        self.join_time_us <= now_us && self.leave_time_us.is_none_or(|leave| now_us < leave)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub agency: String,
    /// The current (or scheduled, or last) period.
    pub period: Period,
    pub previous_periods: Vec<Period>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    Scheduled,
    Current,
    Former,
}

impl Member {
    pub fn state(&self, now_us: i64) -> MemberState {
        if self.period.join_time_us > now_us {
            MemberState::Scheduled
        } else if self.period.covers(now_us) {
            MemberState::Current
        } else {
            MemberState::Former
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Center {
    pub center_id: String,
    pub display_name: String,
    pub description: String,
    pub state: CenterState,
    pub suspend_reason: String,
    pub members: Vec<Member>,
    pub create_time_us: i64,
    pub update_time_us: i64,
}

/// That the AddCenterMember call with a given `request_id` added `agency` to a center. Stored
/// beside the center under the same request-id index as everything a create makes, so a retried
/// call finds the membership it opened instead of failing with ALREADY_A_MEMBER (or, after the
/// agency left, opening another period).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipReceipt {
    /// Names the receipt: one agency may be added to one center more than once.
    pub receipt_id: String,
    pub center_id: String,
    pub agency: String,
}

impl Resource for MembershipReceipt {
    const KIND: Kind = Kind::MembershipReceipt;

    fn name(&self) -> String {
        format!("{}/membershipReceipts/{}", center_name(&self.center_id), self.receipt_id)
    }

    fn parent(&self) -> String {
        center_name(&self.center_id)
    }
}

impl Resource for Center {
    const KIND: Kind = Kind::Center;

    fn name(&self) -> String {
        center_name(&self.center_id)
    }
}

pub fn center_name(center_id: &str) -> String {
    format!("centers/{center_id}")
}

/// Center ids: 2–63 characters of lower-case letters, digits and dashes, starting with a letter.
pub fn is_center_id(id: &str) -> bool {
    (2..=63).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

pub fn center_id_from_name(name: &str) -> Option<&str> {
    name.strip_prefix("centers/").filter(|id| is_center_id(id))
}

impl Center {
    pub fn new(
        center_id: String,
        display_name: String,
        description: String,
        now_us: i64,
    ) -> Result<Self, FieldViolations> {
        let mut violations = FieldViolations::new();
        violations.check(
            !is_center_id(&center_id),
            "center.center_id",
            "must be 2 to 63 characters: lower-case letters, digits and dashes, starting with a letter (e.g. ocdetf-fusion-center)",
        );
        violations.check(display_name.trim().is_empty(), "center.display_name", "is required");
        violations.check(
            display_name.chars().count() > 200,
            "center.display_name",
            "must be at most 200 characters",
        );
        violations.check(
            description.chars().count() > 2000,
            "center.description",
            "must be at most 2000 characters",
        );
        if !violations.is_empty() {
            return Err(violations);
        }
        Ok(Center {
            center_id,
            display_name: display_name.trim().to_owned(),
            description,
            state: CenterState::Active,
            suspend_reason: String::new(),
            members: Vec::new(),
            create_time_us: now_us,
            update_time_us: now_us,
        })
    }

    pub fn member(&self, agency: &str) -> Option<&Member> {
        self.members.iter().find(|member| member.agency == agency)
    }

    pub fn is_current_member(&self, agency: &str, now_us: i64) -> bool {
        self.member(agency).is_some_and(|member| member.state(now_us) == MemberState::Current)
    }

    /// Whether the agency was ever a member (current or former): former members keep read access
    /// to the agreements they were party to.
    pub fn was_member(&self, agency: &str, now_us: i64) -> bool {
        self.member(agency).is_some_and(|member| member.state(now_us) != MemberState::Scheduled)
    }

    pub fn current_members(&self, now_us: i64) -> Vec<&str> {
        self.members
            .iter()
            .filter(|member| member.state(now_us) == MemberState::Current)
            .map(|member| member.agency.as_str())
            .collect()
    }

    /// Adds `agency` from `join_time_us`; a former member starts a new period. Errors name why an
    /// agency already counts as a member.
    pub fn add_member(&mut self, agency: &str, join_time_us: i64, now_us: i64) -> Result<(), &'static str> {
        let period = Period { join_time_us, leave_time_us: None };
        match self.members.iter_mut().find(|member| member.agency == agency) {
            Some(member) if member.state(now_us) == MemberState::Former => {
                member.previous_periods.push(member.period);
                member.period = period;
            }
            Some(_) => return Err("the agency is already a current or scheduled member"),
            None => {
                self.members.push(Member { agency: agency.to_owned(), period, previous_periods: Vec::new() })
            }
        }
        self.update_time_us = now_us;
        Ok(())
    }

    /// Ends `agency`'s current or scheduled membership at `leave_time_us`.
    pub fn remove_member(
        &mut self,
        agency: &str,
        leave_time_us: i64,
        now_us: i64,
    ) -> Result<(), &'static str> {
        let member = self.members.iter_mut().find(|member| member.agency == agency).ok_or("not a member")?;
        if member.state(now_us) == MemberState::Former {
            return Err("the agency has already left");
        }
        if leave_time_us < member.period.join_time_us {
            return Err("the leave time is before the join time");
        }
        member.period.leave_time_us = Some(leave_time_us);
        self.update_time_us = now_us;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_periods() {
        let mut center = Center::new("ioc-2".into(), "IOC-2".into(), String::new(), 0).unwrap();
        center.add_member("ICE", 100, 50).unwrap();
        assert_eq!(center.member("ICE").unwrap().state(50), MemberState::Scheduled);
        assert!(center.is_current_member("ICE", 100));
        assert_eq!(
            center.add_member("ICE", 200, 150),
            Err("the agency is already a current or scheduled member")
        );
        center.remove_member("ICE", 300, 150).unwrap();
        assert!(center.is_current_member("ICE", 299));
        assert!(!center.is_current_member("ICE", 300));
        assert!(center.was_member("ICE", 400));
        center.add_member("ICE", 500, 400).unwrap();
        assert_eq!(center.member("ICE").unwrap().previous_periods.len(), 1);
        assert_eq!(center.current_members(600), ["ICE"]);
    }

    #[test]
    fn center_ids() {
        assert!(is_center_id("ocdetf-fusion-center"));
        assert!(!is_center_id("OCDETF"));
        assert_eq!(center_id_from_name("centers/ioc-2"), Some("ioc-2"));
        assert!(Center::new("X".into(), " ".into(), String::new(), 0).is_err());
    }
}
