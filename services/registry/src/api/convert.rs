//! Conversions between protos and domain types shared by several handlers.

use interlock_api::common::v1 as common;
use interlock_rpc::{micros_from_timestamp, timestamp_from_micros};
use prost_types::{FieldMask, Timestamp};
use tonic::Status;

use crate::domain::agency::{Contact, code_from_name};
use crate::error::Error;

pub fn contact_from_proto(contact: common::Contact) -> Contact {
    Contact {
        name: contact.name,
        phone: contact.phone,
        email: contact.email,
        around_the_clock: contact.around_the_clock,
    }
}

pub fn contact_to_proto(contact: &Contact) -> common::Contact {
    common::Contact {
        name: contact.name.clone(),
        phone: contact.phone.clone(),
        email: contact.email.clone(),
        around_the_clock: contact.around_the_clock,
    }
}

pub fn ts(micros: i64) -> Option<Timestamp> {
    Some(timestamp_from_micros(micros))
}

pub fn opt_ts(micros: Option<i64>) -> Option<Timestamp> {
    micros.map(timestamp_from_micros)
}

pub fn micros(timestamp: Option<&Timestamp>) -> Option<i64> {
    timestamp.map(micros_from_timestamp)
}

/// The agency code of an `agencies/{code}` name, or INVALID_ARGUMENT naming `field`.
pub fn agency_code<'a>(name: &'a str, field: &str) -> Result<&'a str, Error> {
    code_from_name(name)
        .ok_or_else(|| Error::invalid(field, "must be an agency resource name such as agencies/DEA"))
}

/// Splits `agencies/{code}/{collection}/{id}`.
pub fn child_name<'a>(name: &'a str, collection: &str, field: &str) -> Result<(&'a str, &'a str), Error> {
    name.strip_prefix("agencies/")
        .and_then(|rest| rest.split_once(&format!("/{collection}/")))
        .filter(|(code, id)| {
            code_from_name(&format!("agencies/{code}")).is_some() && !id.is_empty() && !id.contains('/')
        })
        .ok_or_else(|| Error::invalid(field, format!("must look like agencies/DEA/{collection}/<id>")))
}

pub fn mask_paths(mask: Option<FieldMask>) -> Vec<String> {
    mask.map(|mask| mask.paths).unwrap_or_default()
}

/// INVALID_ARGUMENT for a missing request message field.
pub fn required<T>(value: Option<T>, field: &str) -> Result<T, Status> {
    value.ok_or_else(|| Error::invalid(field, "is required").into())
}
