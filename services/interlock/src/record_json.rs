//! The NDJSON form of a record, as `interlock generate` writes it and `interlock records ingest`
//! reads it: one JSON object per line holding the input fields of interlock.records.v1.Record.
//!
//! The shape is chosen so a person can write a line by hand (README, "Record files"):
//! - field names are the proto field names;
//! - enums are their value names with or without the type prefix (`"SEIZURE"` or
//!   `"RECORD_CATEGORY_SEIZURE"`);
//! - timestamps are RFC 3339 strings (`"2024-03-01T12:00:00Z"`); a birth date is `"YYYY-MM-DD"`
//!   (or `"YYYY"`, `"YYYY-MM"` when only part is known);
//! - a person's name parts sit directly in the person (`surname`, `given`, `middle`, `suffix`);
//! - a selector is `{"kind": "PHONE", "value": "(214) 555-0147", "region": "US"}`;
//! - output-only fields (name, owner, version, times, etag, access) are not part of it: the owner
//!   is the agency of the credential that ingests the file.
//!
//! Every field but `record_number`, `category`, `sensitivity` and `title` may be left out.

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use interlock_api::common::v1::{
    Caveat, Date, Identification, IdentificationCategory, Person, PersonName, RecordCategory, Selector,
    SelectorKind, SensitivityLevel,
};
use interlock_api::records::v1::{
    ContentValidity, EntityRole, Record, RecordOrganization, RecordPerson, RecordSelector, SourceReliability,
};
use prost_types::Timestamp;
use serde::{Deserialize, Serialize};

/// One line of a record file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonRecord {
    pub record_number: String,
    pub category: String,
    pub sensitivity: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caveats: Vec<String>,
    pub title: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub narrative: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occur_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_reliability: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_validity: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub control_official: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_validate_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_by_time: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub persons: Vec<JsonPerson>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizations: Vec<JsonOrganization>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selectors: Vec<JsonSelector>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonName {
    pub surname: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub given: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub middle: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub suffix: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonPerson {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub entity_id: String,
    pub role: String,
    #[serde(flatten)]
    pub name: JsonName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub nationality: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifications: Vec<JsonIdentification>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<JsonName>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonIdentification {
    pub category: String,
    pub number: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub issuer: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonOrganization {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub entity_id: String,
    pub display_name: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub country: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonSelector {
    pub kind: String,
    pub value: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub entity_id: String,
}

/// An enum value from its name, with or without the type's prefix.
fn enum_value(field: &str, name: &str, prefix: &str, parse: fn(&str) -> Option<i32>) -> anyhow::Result<i32> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with(prefix) { upper } else { format!("{prefix}{upper}") };
    parse(&full).with_context(|| format!("{field}: {name:?} is not a known value"))
}

/// The short name (prefix removed) of an enum value, as written to files.
fn enum_name(full: &str, prefix: &str) -> String {
    full.strip_prefix(prefix).unwrap_or(full).to_owned()
}

fn timestamp(field: &str, value: &Option<String>) -> anyhow::Result<Option<Timestamp>> {
    value
        .as_deref()
        .map(|text| {
            let time = DateTime::parse_from_rfc3339(text)
                .with_context(|| format!("{field}: {text:?} is not an RFC 3339 time"))?
                .with_timezone(&Utc);
            Ok(Timestamp { seconds: time.timestamp(), nanos: time.timestamp_subsec_nanos() as i32 })
        })
        .transpose()
}

fn rfc3339(time: &Option<Timestamp>) -> Option<String> {
    time.as_ref()
        .and_then(|t| DateTime::<Utc>::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

fn date(field: &str, text: &str) -> anyhow::Result<Date> {
    let parts: Vec<&str> = text.split('-').collect();
    let number = |i: usize| -> anyhow::Result<i32> {
        parts
            .get(i)
            .map_or(Ok(0), |p| p.parse().with_context(|| format!("{field}: {text:?} is not YYYY-MM-DD")))
    };
    if parts.len() > 3 {
        bail!("{field}: {text:?} is not YYYY-MM-DD");
    }
    Ok(Date { year: number(0)?, month: number(1)?, day: number(2)? })
}

fn date_text(date: &Date) -> String {
    match (date.month, date.day) {
        (0, _) => format!("{:04}", date.year),
        (m, 0) => format!("{:04}-{m:02}", date.year),
        (m, d) => format!("{:04}-{m:02}-{d:02}", date.year),
    }
}

fn name_of(name: &JsonName) -> PersonName {
    PersonName {
        given: name.given.clone(),
        middle: name.middle.clone(),
        surname: name.surname.clone(),
        suffix: name.suffix.clone(),
    }
}

fn json_name(name: &PersonName) -> JsonName {
    JsonName {
        surname: name.surname.clone(),
        given: name.given.clone(),
        middle: name.middle.clone(),
        suffix: name.suffix.clone(),
    }
}

fn parse_category(s: &str) -> Option<i32> {
    RecordCategory::from_str_name(s).map(|v| v as i32)
}
fn parse_sensitivity(s: &str) -> Option<i32> {
    SensitivityLevel::from_str_name(s).map(|v| v as i32)
}
fn parse_caveat(s: &str) -> Option<i32> {
    Caveat::from_str_name(s).map(|v| v as i32)
}
fn parse_reliability(s: &str) -> Option<i32> {
    SourceReliability::from_str_name(s).map(|v| v as i32)
}
fn parse_validity(s: &str) -> Option<i32> {
    ContentValidity::from_str_name(s).map(|v| v as i32)
}
fn parse_role(s: &str) -> Option<i32> {
    EntityRole::from_str_name(s).map(|v| v as i32)
}
fn parse_identification(s: &str) -> Option<i32> {
    IdentificationCategory::from_str_name(s).map(|v| v as i32)
}
fn parse_kind(s: &str) -> Option<i32> {
    SelectorKind::from_str_name(s).map(|v| v as i32)
}

impl JsonRecord {
    /// The proto record this line describes. Names of enums and formats of times are checked
    /// here; everything else (required fields, selector syntax) is the server's to judge, so a
    /// bad record is reported by the ingest with the server's field violations.
    pub fn to_proto(&self) -> anyhow::Result<Record> {
        let caveats = self
            .caveats
            .iter()
            .enumerate()
            .map(|(i, c)| enum_value(&format!("caveats[{i}]"), c, "CAVEAT_", parse_caveat))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let optional_enum =
            |field: &str, value: &Option<String>, prefix: &str, parse: fn(&str) -> Option<i32>| {
                value.as_deref().map_or(Ok(0), |v| enum_value(field, v, prefix, parse))
            };
        let mut persons = Vec::with_capacity(self.persons.len());
        for (i, p) in self.persons.iter().enumerate() {
            let field = format!("persons[{i}]");
            let identifications = p
                .identifications
                .iter()
                .enumerate()
                .map(|(j, id)| {
                    Ok(Identification {
                        category: enum_value(
                            &format!("{field}.identifications[{j}].category"),
                            &id.category,
                            "IDENTIFICATION_CATEGORY_",
                            parse_identification,
                        )?,
                        number: id.number.clone(),
                        issuer: id.issuer.clone(),
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let birth_date =
                p.birth_date.as_deref().map(|d| date(&format!("{field}.birth_date"), d)).transpose()?;
            persons.push(RecordPerson {
                entity_id: p.entity_id.clone(),
                person: Some(Person {
                    name: Some(name_of(&p.name)),
                    birth_date,
                    nationality: p.nationality.clone(),
                    identifications,
                }),
                role: enum_value(&format!("{field}.role"), &p.role, "ENTITY_ROLE_", parse_role)?,
                aliases: p.aliases.iter().map(name_of).collect(),
            });
        }
        let organizations = self
            .organizations
            .iter()
            .enumerate()
            .map(|(i, o)| {
                Ok(RecordOrganization {
                    entity_id: o.entity_id.clone(),
                    display_name: o.display_name.clone(),
                    role: enum_value(
                        &format!("organizations[{i}].role"),
                        &o.role,
                        "ENTITY_ROLE_",
                        parse_role,
                    )?,
                    country: o.country.clone(),
                    description: o.description.clone(),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let selectors = self
            .selectors
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Ok(RecordSelector {
                    selector: Some(Selector {
                        kind: enum_value(
                            &format!("selectors[{i}].kind"),
                            &s.kind,
                            "SELECTOR_KIND_",
                            parse_kind,
                        )?,
                        value: s.value.clone(),
                        region: s.region.clone(),
                    }),
                    entity_id: s.entity_id.clone(),
                    ..Default::default()
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Record {
            record_number: self.record_number.clone(),
            category: enum_value("category", &self.category, "RECORD_CATEGORY_", parse_category)?,
            sensitivity: enum_value(
                "sensitivity",
                &self.sensitivity,
                "SENSITIVITY_LEVEL_",
                parse_sensitivity,
            )?,
            caveats,
            title: self.title.clone(),
            narrative: self.narrative.clone(),
            occur_time: timestamp("occur_time", &self.occur_time)?,
            report_time: timestamp("report_time", &self.report_time)?,
            source_reliability: optional_enum(
                "source_reliability",
                &self.source_reliability,
                "SOURCE_RELIABILITY_",
                parse_reliability,
            )?,
            content_validity: optional_enum(
                "content_validity",
                &self.content_validity,
                "CONTENT_VALIDITY_",
                parse_validity,
            )?,
            control_official: self.control_official.clone(),
            last_validate_time: timestamp("last_validate_time", &self.last_validate_time)?,
            review_by_time: timestamp("review_by_time", &self.review_by_time)?,
            persons,
            organizations,
            selectors,
            ..Default::default()
        })
    }

    /// The line form of a proto record (unknown enum numbers are written as their number, which
    /// reads back as an error: the file cannot hold what the proto does not name).
    pub fn from_proto(record: &Record) -> Self {
        fn name_or_number<E: TryFrom<i32>>(value: i32, name: fn(&E) -> &'static str, prefix: &str) -> String {
            match E::try_from(value) {
                Ok(e) => enum_name(name(&e), prefix),
                Err(_) => value.to_string(),
            }
        }
        let optional = |value: i32, text: String| (value != 0).then_some(text);
        JsonRecord {
            record_number: record.record_number.clone(),
            category: name_or_number(record.category, RecordCategory::as_str_name, "RECORD_CATEGORY_"),
            sensitivity: name_or_number(
                record.sensitivity,
                SensitivityLevel::as_str_name,
                "SENSITIVITY_LEVEL_",
            ),
            caveats: record
                .caveats
                .iter()
                .map(|c| name_or_number(*c, Caveat::as_str_name, "CAVEAT_"))
                .collect(),
            title: record.title.clone(),
            narrative: record.narrative.clone(),
            occur_time: rfc3339(&record.occur_time),
            report_time: rfc3339(&record.report_time),
            source_reliability: optional(
                record.source_reliability,
                name_or_number(
                    record.source_reliability,
                    SourceReliability::as_str_name,
                    "SOURCE_RELIABILITY_",
                ),
            ),
            content_validity: optional(
                record.content_validity,
                name_or_number(record.content_validity, ContentValidity::as_str_name, "CONTENT_VALIDITY_"),
            ),
            control_official: record.control_official.clone(),
            last_validate_time: rfc3339(&record.last_validate_time),
            review_by_time: rfc3339(&record.review_by_time),
            persons: record
                .persons
                .iter()
                .map(|p| {
                    let person = p.person.clone().unwrap_or_default();
                    JsonPerson {
                        entity_id: p.entity_id.clone(),
                        role: name_or_number(p.role, EntityRole::as_str_name, "ENTITY_ROLE_"),
                        name: json_name(&person.name.unwrap_or_default()),
                        birth_date: person.birth_date.as_ref().map(date_text),
                        nationality: person.nationality.clone(),
                        identifications: person
                            .identifications
                            .iter()
                            .map(|id| JsonIdentification {
                                category: name_or_number(
                                    id.category,
                                    IdentificationCategory::as_str_name,
                                    "IDENTIFICATION_CATEGORY_",
                                ),
                                number: id.number.clone(),
                                issuer: id.issuer.clone(),
                            })
                            .collect(),
                        aliases: p.aliases.iter().map(json_name).collect(),
                    }
                })
                .collect(),
            organizations: record
                .organizations
                .iter()
                .map(|o| JsonOrganization {
                    entity_id: o.entity_id.clone(),
                    display_name: o.display_name.clone(),
                    role: name_or_number(o.role, EntityRole::as_str_name, "ENTITY_ROLE_"),
                    country: o.country.clone(),
                    description: o.description.clone(),
                })
                .collect(),
            selectors: record
                .selectors
                .iter()
                .map(|s| {
                    let selector = s.selector.clone().unwrap_or_default();
                    JsonSelector {
                        kind: name_or_number(selector.kind, SelectorKind::as_str_name, "SELECTOR_KIND_"),
                        value: selector.value,
                        region: selector.region,
                        entity_id: s.entity_id.clone(),
                    }
                })
                .collect(),
        }
    }
}

/// Parses one line of a record file into a proto record.
pub fn parse_line(line: &str) -> anyhow::Result<Record> {
    let json: JsonRecord = serde_json::from_str(line)?;
    json.to_proto()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hand_written_line_reads_and_round_trips() {
        let line = r#"{"record_number":"ICE-1","category":"SEIZURE","sensitivity":"RESTRICTED",
            "caveats":["ORIGINATOR_CONTROLLED"],"title":"Seizure at Laredo","occur_time":"2024-03-01T12:00:00Z",
            "persons":[{"entity_id":"p1","role":"SUSPECT","surname":"Garza","given":"Luis","birth_date":"1980-04-12",
              "identifications":[{"category":"PASSPORT","number":"G1234567","issuer":"MEX"}]}],
            "selectors":[{"kind":"PHONE","value":"(214) 555-0147","region":"US","entity_id":"p1"}]}"#
            .replace('\n', "");
        let record = parse_line(&line).unwrap();
        assert_eq!(record.category, RecordCategory::Seizure as i32);
        assert_eq!(record.caveats, vec![Caveat::OriginatorControlled as i32]);
        assert_eq!(record.persons[0].person.as_ref().unwrap().birth_date.as_ref().unwrap().month, 4);
        let back = JsonRecord::from_proto(&record);
        assert_eq!(back.to_proto().unwrap(), record);
        assert!(
            parse_line(r#"{"record_number":"x","category":"NOPE","sensitivity":"RESTRICTED","title":"t"}"#)
                .is_err()
        );
    }
}
