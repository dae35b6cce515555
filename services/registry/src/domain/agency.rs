use interlock_rpc::FieldViolations;
use serde::{Deserialize, Serialize};

use crate::store::{Kind, Resource};

/// Longest free-text field we accept (names, departments, jurisdictions).
const MAX_TEXT: usize = 200;
/// Most contacts an agency keeps beside its duty desk.
pub const MAX_CONTACTS: usize = 20;

/// A point of contact. The duty desk must be staffed around the clock: deconfliction hits hand it
/// to other agencies at any hour.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub name: String,
    pub phone: String,
    pub email: String,
    pub around_the_clock: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgencyState {
    Active,
    Suspended,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agency {
    /// Short code such as `ICE` or `DOJ-OCDETF`: unique and immutable.
    pub code: String,
    pub display_name: String,
    pub parent_department: String,
    pub jurisdiction: String,
    pub state: AgencyState,
    pub duty_desk: Contact,
    pub contacts: Vec<Contact>,
    pub suspend_reason: String,
    pub suspend_time_us: Option<i64>,
    pub create_time_us: i64,
    pub update_time_us: i64,
}

impl Resource for Agency {
    const KIND: Kind = Kind::Agency;

    fn name(&self) -> String {
        agency_name(&self.code)
    }
}

impl Agency {
    pub fn is_suspended(&self) -> bool {
        self.state == AgencyState::Suspended
    }

    /// Replaces the editable fields named by `paths` (`display_name`, `parent_department`,
    /// `jurisdiction`, `duty_desk`, `contacts`) with those of `update`, then re-validates.
    pub fn apply_update(
        &self,
        update: NewAgency,
        paths: &[String],
        now_us: i64,
    ) -> Result<Agency, FieldViolations> {
        let mut merged = NewAgency {
            code: self.code.clone(),
            display_name: self.display_name.clone(),
            parent_department: self.parent_department.clone(),
            jurisdiction: self.jurisdiction.clone(),
            duty_desk: Some(self.duty_desk.clone()),
            contacts: self.contacts.clone(),
        };
        let mut violations = FieldViolations::new();
        for path in paths {
            match path.as_str() {
                "display_name" => merged.display_name = update.display_name.clone(),
                "parent_department" => merged.parent_department = update.parent_department.clone(),
                "jurisdiction" => merged.jurisdiction = update.jurisdiction.clone(),
                "duty_desk" => merged.duty_desk = update.duty_desk.clone(),
                "contacts" => merged.contacts = update.contacts.clone(),
                "code" => violations.add("update_mask", "the agency code is immutable"),
                other => violations.add("update_mask", format!("{other:?} is not an editable agency field")),
            }
        }
        if paths.is_empty() {
            violations.add("update_mask", "name at least one field to change");
        }
        if !violations.is_empty() {
            return Err(violations);
        }
        let mut updated = merged.validate("agency", now_us)?;
        updated.state = self.state;
        updated.suspend_reason = self.suspend_reason.clone();
        updated.suspend_time_us = self.suspend_time_us;
        updated.create_time_us = self.create_time_us;
        Ok(updated)
    }
}

/// `agencies/{code}`.
pub fn agency_name(code: &str) -> String {
    format!("agencies/{code}")
}

/// The fields a client supplies for a new agency.
#[derive(Clone, Debug, Default)]
pub struct NewAgency {
    pub code: String,
    pub display_name: String,
    pub parent_department: String,
    pub jurisdiction: String,
    pub duty_desk: Option<Contact>,
    pub contacts: Vec<Contact>,
}

impl NewAgency {
    /// Checks every field, reporting all problems at once, and builds the agency as first stored.
    pub fn validate(self, field: &str, now_us: i64) -> Result<Agency, FieldViolations> {
        let mut violations = FieldViolations::new();
        if !is_agency_code(&self.code) {
            violations.add(
                format!("{field}.code"),
                "must be 2 to 16 characters: upper-case letters, digits and dashes, starting with a letter (e.g. DEA, DOJ-OCDETF)",
            );
        }
        check_text(&mut violations, &format!("{field}.display_name"), &self.display_name, true);
        check_text(&mut violations, &format!("{field}.parent_department"), &self.parent_department, false);
        check_text(&mut violations, &format!("{field}.jurisdiction"), &self.jurisdiction, false);
        match &self.duty_desk {
            None => violations
                .add(format!("{field}.duty_desk"), "is required: a 24/7 desk other agencies can call"),
            Some(desk) => {
                violations.extend_nested(&format!("{field}.duty_desk"), check_contact(desk));
                violations.check(
                    !desk.around_the_clock,
                    &format!("{field}.duty_desk.around_the_clock"),
                    "the duty desk must be staffed around the clock",
                );
            }
        }
        violations.check(
            self.contacts.len() > MAX_CONTACTS,
            &format!("{field}.contacts"),
            &format!("at most {MAX_CONTACTS} contacts"),
        );
        for (index, contact) in self.contacts.iter().enumerate() {
            violations.extend_nested(&format!("{field}.contacts[{index}]"), check_contact(contact));
        }
        if !violations.is_empty() {
            return Err(violations);
        }
        Ok(Agency {
            code: self.code,
            display_name: self.display_name.trim().to_owned(),
            parent_department: self.parent_department.trim().to_owned(),
            jurisdiction: self.jurisdiction.trim().to_owned(),
            state: AgencyState::Active,
            duty_desk: self.duty_desk.unwrap_or_default(),
            contacts: self.contacts,
            suspend_reason: String::new(),
            suspend_time_us: None,
            create_time_us: now_us,
            update_time_us: now_us,
        })
    }
}

/// Agency codes: 2–16 characters of A–Z, 0–9 and `-`, starting with a letter.
pub fn is_agency_code(code: &str) -> bool {
    (2..=16).contains(&code.len())
        && code.starts_with(|c: char| c.is_ascii_uppercase())
        && code.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
}

/// The code in an `agencies/{code}` resource name.
pub fn code_from_name(name: &str) -> Option<&str> {
    name.strip_prefix("agencies/").filter(|code| is_agency_code(code))
}

fn check_text(violations: &mut FieldViolations, field: &str, value: &str, required: bool) {
    if required && value.trim().is_empty() {
        violations.add(field, "is required");
    } else if value.chars().count() > MAX_TEXT {
        violations.add(field, format!("must be at most {MAX_TEXT} characters"));
    }
}

fn check_contact(contact: &Contact) -> FieldViolations {
    let mut violations = FieldViolations::new();
    check_text(&mut violations, "name", &contact.name, true);
    let digits = contact.phone.chars().filter(char::is_ascii_digit).count();
    violations.check(
        contact.phone.trim().is_empty() || !(7..=15).contains(&digits),
        "phone",
        "must be a telephone number with 7 to 15 digits, preferably in E.164 form (+12025550100)",
    );
    let email_ok = contact.email.is_empty()
        || contact
            .email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    violations.check(!email_ok, "email", "must be an e-mail address such as desk@agency.gov");
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desk() -> Contact {
        Contact {
            name: "DEA Duty Desk".into(),
            phone: "+1 202 555 0100".into(),
            email: "desk@dea.example".into(),
            around_the_clock: true,
        }
    }

    fn dea() -> NewAgency {
        NewAgency {
            code: "DEA".into(),
            display_name: "Drug Enforcement Administration".into(),
            parent_department: "Department of Justice".into(),
            jurisdiction: "United States".into(),
            duty_desk: Some(desk()),
            contacts: vec![],
        }
    }

    #[test]
    fn a_complete_agency_is_accepted() {
        let agency = dea().validate("agency", 42).unwrap();
        assert_eq!(agency.name(), "agencies/DEA");
        assert_eq!(agency.state, AgencyState::Active);
        assert_eq!(agency.create_time_us, 42);
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let mut bad = dea();
        bad.code = "dea".into();
        bad.display_name = " ".into();
        bad.duty_desk = Some(Contact { around_the_clock: false, phone: "12".into(), ..desk() });
        bad.contacts = vec![Contact { email: "nope".into(), ..desk() }];
        let violations = bad.validate("agency", 0).unwrap_err();
        let fields: Vec<&str> = violations.violations().iter().map(|(field, _)| field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "agency.code",
                "agency.display_name",
                "agency.duty_desk.phone",
                "agency.duty_desk.around_the_clock",
                "agency.contacts[0].email"
            ]
        );
    }

    #[test]
    fn a_duty_desk_is_required() {
        let violations = NewAgency { duty_desk: None, ..dea() }.validate("agency", 0).unwrap_err();
        assert_eq!(violations.violations()[0].0, "agency.duty_desk");
    }

    #[test]
    fn agency_codes() {
        for good in ["DEA", "ICE", "DOJ-OCDETF", "IOC2", "FBI"] {
            assert!(is_agency_code(good), "{good}");
        }
        for bad in ["", "D", "dea", "2DEA", "DEA_X", "ABCDEFGHIJKLMNOPQ", "DEA/ICE"] {
            assert!(!is_agency_code(bad), "{bad}");
        }
        assert_eq!(code_from_name("agencies/DOJ-OCDETF"), Some("DOJ-OCDETF"));
        assert_eq!(code_from_name("agencies/../x"), None);
        assert_eq!(code_from_name("DEA"), None);
    }
}
