//! The test vectors of docs/selectors.md, checked against this implementation.
//!
//! The document holds the vectors in tables between `<!-- vectors:NAME -->` and
//! `<!-- /vectors:NAME -->` markers. [`regenerate`] reads the inputs of every table (keys,
//! selector inputs, rejected inputs, persons), computes every output column and the tables that
//! are entirely computed (person digests, worked examples), and renders the document again. A
//! unit test asserts that the committed document is unchanged by it, so the document and the
//! code cannot drift; after a deliberate change, rewrite the document with
//! `cargo run -p interlock-selectors --example test_vectors -- --write`.
//!
//! Table cells hold their text in backticks (an empty cell is the empty string). In name keys
//! and digest inputs, `␟` (U+241F) stands for the separator byte 0x1F.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use interlock_api::common::v1::{PersonName, SelectorKind};

use crate::blind::{PersonField, SelectorKey, person_digest_input, selector_digest_input};
use crate::error::ErrorField;
use crate::matching::PersonKeys;
use crate::normalize::normalize;
use crate::person::{BirthDate, normalize_person_name};

/// The visible stand-in for the 0x1F separator in the document.
pub const SEPARATOR_SYMBOL: char = '\u{241f}';

/// A key of the key table.
#[derive(Debug, Clone)]
pub struct KeyVector {
    /// Key id.
    pub id: String,
    /// Key bytes in hex.
    pub hex: String,
}

/// A row of the selector table (inputs).
#[derive(Debug, Clone)]
pub struct SelectorVector {
    /// Key id.
    pub key_id: String,
    /// SelectorKind proto name.
    pub kind: String,
    /// Raw value.
    pub value: String,
    /// Raw region.
    pub region: String,
}

/// A row of the rejected-input table (inputs).
#[derive(Debug, Clone)]
pub struct ErrorVector {
    /// SelectorKind proto name.
    pub kind: String,
    /// Raw value.
    pub value: String,
    /// Raw region.
    pub region: String,
}

/// A row of the person table (inputs).
#[derive(Debug, Clone)]
pub struct PersonVector {
    /// Key id.
    pub key_id: String,
    /// Given name.
    pub given: String,
    /// Middle name.
    pub middle: String,
    /// Surname.
    pub surname: String,
    /// Suffix.
    pub suffix: String,
    /// Date of birth `YYYY-MM-DD`.
    pub birth_date: String,
}

/// The inputs of every vector table of the document.
#[derive(Debug, Clone, Default)]
pub struct Vectors {
    /// Keys.
    pub keys: Vec<KeyVector>,
    /// Selectors.
    pub selectors: Vec<SelectorVector>,
    /// Rejected inputs.
    pub errors: Vec<ErrorVector>,
    /// Persons.
    pub persons: Vec<PersonVector>,
}

const TABLES: [&str; 6] = ["keys", "selectors", "errors", "persons", "person-digests", "worked-example"];

fn begin_marker(name: &str) -> String {
    format!("<!-- vectors:{name} -->")
}

fn end_marker(name: &str) -> String {
    format!("<!-- /vectors:{name} -->")
}

/// The lines between a section's markers.
fn section<'a>(doc: &'a str, name: &str) -> Result<Vec<&'a str>, String> {
    let (begin, end) = (begin_marker(name), end_marker(name));
    let mut lines = doc.lines();
    if !lines.any(|l| l.trim() == begin) {
        return Err(format!("the document has no {begin} marker"));
    }
    let mut body = Vec::new();
    for line in lines {
        if line.trim() == end {
            return Ok(body);
        }
        body.push(line);
    }
    Err(format!("the document has no {end} marker"))
}

/// The data rows of a table (lines starting with `|`, without the header and separator).
fn rows(lines: &[&str], columns: usize) -> Result<Vec<Vec<String>>, String> {
    let table: Vec<&str> = lines.iter().copied().filter(|l| l.trim_start().starts_with('|')).collect();
    table
        .iter()
        .skip(2)
        .map(|line| {
            let inner = line
                .trim()
                .strip_prefix('|')
                .and_then(|l| l.strip_suffix('|'))
                .ok_or_else(|| format!("malformed table row: {line}"))?;
            let cells: Vec<String> = inner.split('|').map(cell).collect::<Result<_, _>>()?;
            if cells.len() != columns {
                return Err(format!("expected {columns} cells in: {line}"));
            }
            Ok(cells)
        })
        .collect()
}

fn cell(raw: &str) -> Result<String, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Ok(String::new());
    }
    t.strip_prefix('`')
        .and_then(|t| t.strip_suffix('`'))
        .map(|t| t.replace(SEPARATOR_SYMBOL, "\u{1f}"))
        .ok_or_else(|| format!("a table cell must be empty or in backticks: {raw}"))
}

fn code(s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!("`{}`", s.replace('\u{1f}', &SEPARATOR_SYMBOL.to_string()))
    }
}

fn render_table(header: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let mut out =
        vec![format!("| {} |", header.join(" | ")), format!("|{}|", vec!["---"; header.len()].join("|"))];
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| code(c)).collect();
        out.push(format!("| {} |", cells.join(" | ")));
    }
    out
}

/// Reads the inputs of every vector table.
pub fn parse(doc: &str) -> Result<Vectors, String> {
    let keys = rows(&section(doc, "keys")?, 2)?
        .into_iter()
        .map(|r| KeyVector { id: r[0].clone(), hex: r[1].clone() })
        .collect();
    let selectors = rows(&section(doc, "selectors")?, 7)?
        .into_iter()
        .map(|r| SelectorVector {
            key_id: r[0].clone(),
            kind: r[1].clone(),
            value: r[2].clone(),
            region: r[3].clone(),
        })
        .collect();
    let errors = rows(&section(doc, "errors")?, 4)?
        .into_iter()
        .map(|r| ErrorVector { kind: r[0].clone(), value: r[1].clone(), region: r[2].clone() })
        .collect();
    let persons = rows(&section(doc, "persons")?, 9)?
        .into_iter()
        .map(|r| PersonVector {
            key_id: r[0].clone(),
            given: r[1].clone(),
            middle: r[2].clone(),
            surname: r[3].clone(),
            suffix: r[4].clone(),
            birth_date: r[5].clone(),
        })
        .collect();
    Ok(Vectors { keys, selectors, errors, persons })
}

fn kind(name: &str) -> Result<SelectorKind, String> {
    SelectorKind::from_str_name(name).ok_or_else(|| format!("unknown SelectorKind {name}"))
}

fn birth_date(iso: &str) -> Result<BirthDate, String> {
    let parts: Vec<i32> = iso
        .split('-')
        .map(|p| p.parse::<i32>().map_err(|e| format!("{iso}: {e}")))
        .collect::<Result<_, _>>()?;
    match parts[..] {
        [y, m, d] => BirthDate::new(y, m, d).map_err(|e| format!("{iso}: {e}")),
        _ => Err(format!("{iso}: not YYYY-MM-DD")),
    }
}

/// The vectors with all their outputs computed.
struct Computed {
    keys: BTreeMap<String, (SelectorKey, String)>,
    selectors: Vec<Vec<String>>,
    errors: Vec<Vec<String>>,
    persons: Vec<Vec<String>>,
    person_digests: Vec<Vec<String>>,
    worked_example: Vec<String>,
}

fn compute(v: &Vectors) -> Result<Computed, String> {
    let mut keys = BTreeMap::new();
    for k in &v.keys {
        let key = SelectorKey::from_hex(&k.id, &k.hex).map_err(|e| format!("key {}: {e}", k.id))?;
        keys.insert(k.id.clone(), (key, k.hex.clone()));
    }
    let key = |id: &str| keys.get(id).map(|(k, _)| k).ok_or_else(|| format!("unknown key id {id}"));

    let mut selectors = Vec::new();
    for s in &v.selectors {
        let n = normalize(kind(&s.kind)?, &s.value, &s.region)
            .map_err(|e| format!("selector {} {:?}: {e}", s.kind, s.value))?;
        let digest = key(&s.key_id)?.digest_selector(&n).digest;
        selectors.push(vec![
            s.key_id.clone(),
            s.kind.clone(),
            s.value.clone(),
            s.region.clone(),
            n.region().to_owned(),
            n.value().to_owned(),
            digest.to_hex(),
        ]);
    }

    let mut errors = Vec::new();
    for e in &v.errors {
        let field = match normalize(kind(&e.kind)?, &e.value, &e.region) {
            Ok(_) => return Err(format!("{} {:?} is accepted but listed as rejected", e.kind, e.value)),
            Err(err) => match err.field() {
                ErrorField::Region => "region",
                _ => "value",
            },
        };
        errors.push(vec![e.kind.clone(), e.value.clone(), e.region.clone(), field.to_owned()]);
    }

    let mut persons = Vec::new();
    let mut person_digests = Vec::new();
    for p in &v.persons {
        let name = PersonName {
            given: p.given.clone(),
            middle: p.middle.clone(),
            surname: p.surname.clone(),
            suffix: p.suffix.clone(),
        };
        let dob = birth_date(&p.birth_date)?;
        let person =
            normalize_person_name(&name, Some(dob)).map_err(|e| format!("person {:?}: {e}", p.surname))?;
        let clear = person.keys();
        persons.push(vec![
            p.key_id.clone(),
            p.given.clone(),
            p.middle.clone(),
            p.surname.clone(),
            p.suffix.clone(),
            p.birth_date.clone(),
            person.full_name_key(),
            clear.surname.join(" "),
            clear.given.join(" "),
        ]);
        let k = key(&p.key_id)?;
        let inputs = clear
            .surname
            .iter()
            .chain(&clear.given)
            .map(|s| (PersonField::NamePhonetic, s.clone()))
            .chain([(PersonField::BirthDate, dob.to_iso())])
            .chain([(PersonField::FullName, person.full_name_key())]);
        for (field, value) in inputs {
            let row = vec![
                p.key_id.clone(),
                field.label().to_owned(),
                value.clone(),
                k.mac(&person_digest_input(field, &value)).to_hex(),
            ];
            if !person_digests.contains(&row) {
                person_digests.push(row);
            }
        }
        // blind_person must produce exactly the digests listed for this person.
        let blinded = k.blind_person(&person).map_err(|e| e.to_string())?;
        let listed = |field: PersonField, value: &str| k.mac(&person_digest_input(field, value));
        let phonetic = |keys: &[String]| -> Vec<_> {
            keys.iter().map(|s| listed(PersonField::NamePhonetic, s)).collect()
        };
        let expected = PersonKeys {
            surname: phonetic(&clear.surname),
            given: phonetic(&clear.given),
            birth_date: Some(listed(PersonField::BirthDate, &dob.to_iso())),
            full_name: Some(listed(PersonField::FullName, &person.full_name_key())),
        };
        if blinded.keys != expected {
            return Err(format!("blind_person disagrees with the layout for {:?}", p.surname));
        }
    }

    let worked_example = worked_example(&keys, v)?;
    Ok(Computed { keys, selectors, errors, persons, person_digests, worked_example })
}

fn worked_example(
    keys: &BTreeMap<String, (SelectorKey, String)>,
    v: &Vectors,
) -> Result<Vec<String>, String> {
    let s = v.selectors.first().ok_or("no selector vector")?;
    let p = v.persons.first().ok_or("no person vector")?;
    let (key, key_hex) = keys.get(&s.key_id).ok_or_else(|| format!("unknown key id {}", s.key_id))?;
    let n = normalize(kind(&s.kind)?, &s.value, &s.region).map_err(|e| e.to_string())?;
    let input = selector_digest_input(&n);
    let dob = birth_date(&p.birth_date)?.to_iso();
    let (pkey, _) = keys.get(&p.key_id).ok_or_else(|| format!("unknown key id {}", p.key_id))?;
    let pinput = person_digest_input(PersonField::BirthDate, &dob);
    let visible =
        |bytes: &[u8]| String::from_utf8_lossy(bytes).replace('\u{1f}', &SEPARATOR_SYMBOL.to_string());
    let mut out = String::new();
    let _ = writeln!(out, "```text");
    let _ = writeln!(out, "key id            {}", key.id());
    let _ = writeln!(out, "key (hex)         {key_hex}");
    let _ = writeln!(out, "kind              {}", s.kind);
    let _ = writeln!(out, "value, region     {:?}, {:?}", s.value, s.region);
    let _ = writeln!(out, "normalised        region {:?}, value {:?}", n.region(), n.value());
    let _ = writeln!(out, "digest input      {}", visible(&input));
    let _ = writeln!(out, "digest input hex  {}", hex::encode(&input));
    let _ = writeln!(out, "digest (hex)      {}", key.mac(&input).to_hex());
    let _ = writeln!(out);
    let _ = writeln!(out, "key id            {}", pkey.id());
    let _ = writeln!(out, "date of birth     {dob}");
    let _ = writeln!(out, "digest input      {}", visible(&pinput));
    let _ = writeln!(out, "digest input hex  {}", hex::encode(&pinput));
    let _ = writeln!(out, "digest (hex)      {}", pkey.mac(&pinput).to_hex());
    let _ = write!(out, "```");
    Ok(out.lines().map(str::to_owned).collect())
}

/// The document with every computed column and table recomputed from its inputs.
pub fn regenerate(doc: &str) -> Result<String, String> {
    let vectors = parse(doc)?;
    let c = compute(&vectors)?;
    let key_rows: Vec<Vec<String>> =
        c.keys.iter().map(|(id, (_, hex))| vec![id.clone(), hex.clone()]).collect();
    // Keep the document's key order.
    let key_rows: Vec<Vec<String>> =
        vectors.keys.iter().filter_map(|k| key_rows.iter().find(|r| r[0] == k.id).cloned()).collect();
    let mut sections: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    sections.insert("keys", render_table(&["key id", "key (hex)"], &key_rows));
    sections.insert(
        "selectors",
        render_table(
            &["key id", "kind", "value", "region", "normalised region", "normalised value", "digest (hex)"],
            &c.selectors,
        ),
    );
    sections.insert("errors", render_table(&["kind", "value", "region", "rejected field"], &c.errors));
    sections.insert(
        "persons",
        render_table(
            &[
                "key id",
                "given",
                "middle",
                "surname",
                "suffix",
                "birth date",
                "full name key",
                "surname keys",
                "given name keys",
            ],
            &c.persons,
        ),
    );
    sections.insert(
        "person-digests",
        render_table(&["key id", "label", "value", "digest (hex)"], &c.person_digests),
    );
    sections.insert("worked-example", c.worked_example);

    let mut out = String::with_capacity(doc.len());
    let mut skipping: Option<String> = None;
    for line in doc.lines() {
        if let Some(end) = &skipping {
            if line.trim() == end {
                out.push_str(line);
                out.push('\n');
                skipping = None;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if let Some(name) = TABLES.iter().find(|n| line.trim() == begin_marker(n)) {
            for generated in sections.get(name).into_iter().flatten() {
                out.push_str(generated);
                out.push('\n');
            }
            skipping = Some(end_marker(name));
        }
    }
    if skipping.is_some() {
        return Err("a vectors section is not closed".into());
    }
    if !doc.ends_with('\n') {
        out.pop();
    }
    Ok(out)
}

/// The committed specification.
pub const SPECIFICATION: &str = include_str!("../../../docs/selectors.md");

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    fn first_difference(a: &str, b: &str) -> String {
        a.lines()
            .zip(b.lines())
            .enumerate()
            .find(|(_, (x, y))| x != y)
            .map(|(i, (x, y))| format!("line {}:\n  document: {x}\n  computed: {y}", i + 1))
            .unwrap_or_else(|| "the documents differ in length".into())
    }

    /// Every vector of docs/selectors.md is what this implementation computes.
    #[test]
    fn document_vectors_match_the_implementation() {
        let regenerated = regenerate(SPECIFICATION).expect("the vectors parse and compute");
        assert!(
            regenerated == SPECIFICATION,
            "docs/selectors.md disagrees with the code ({}); if the change is deliberate, run `cargo run -p interlock-selectors --example test_vectors -- --write`",
            first_difference(SPECIFICATION, &regenerated)
        );
    }

    /// The vectors cover every kind, two keys, rejected inputs of every kind, and persons.
    #[test]
    fn document_vectors_cover_everything() {
        let v = parse(SPECIFICATION).expect("parses");
        assert!(v.keys.len() >= 2);
        for kind in crate::ALL_KINDS {
            let name = kind.as_str_name();
            assert!(
                v.selectors.iter().filter(|s| s.kind == name).count() >= 2,
                "fewer than two selector vectors for {name}"
            );
            assert!(v.errors.iter().any(|e| e.kind == name), "no rejected-input vector for {name}");
        }
        let key_ids: Vec<&str> = v.selectors.iter().map(|s| s.key_id.as_str()).collect();
        assert!(v.keys.iter().all(|k| key_ids.contains(&k.id.as_str())));
        assert!(v.persons.len() >= 4);
    }

    /// Independent of `selector_digest_input`: the selector digests of the document are
    /// HMAC-SHA-256 over the layout assembled here from the document's own columns.
    #[test]
    fn document_digests_follow_the_layout() {
        let keys: BTreeMap<String, Vec<u8>> = section(SPECIFICATION, "keys")
            .and_then(|s| rows(&s, 2))
            .expect("keys")
            .into_iter()
            .map(|r| (r[0].clone(), hex::decode(&r[1]).expect("hex key")))
            .collect();
        let selectors = section(SPECIFICATION, "selectors").and_then(|s| rows(&s, 7)).expect("selectors");
        for r in &selectors {
            let input = format!("interlock-selector-v1\u{1f}{}\u{1f}{}\u{1f}{}", r[1], r[4], r[5]);
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&keys[&r[0]]).expect("key");
            mac.update(input.as_bytes());
            assert_eq!(hex::encode(mac.finalize().into_bytes()), r[6], "{r:?}");
        }
        let person_digests =
            section(SPECIFICATION, "person-digests").and_then(|s| rows(&s, 4)).expect("person digests");
        assert!(!person_digests.is_empty());
        for r in &person_digests {
            let input = format!("interlock-person-v1\u{1f}{}\u{1f}{}", r[1], r[2]);
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&keys[&r[0]]).expect("key");
            mac.update(input.as_bytes());
            assert_eq!(hex::encode(mac.finalize().into_bytes()), r[3], "{r:?}");
        }
    }

    #[test]
    fn cells() {
        assert_eq!(cell("  "), Ok(String::new()));
        assert_eq!(cell(" `a b` "), Ok("a b".into()));
        assert_eq!(cell("`A␟B`"), Ok("A\u{1f}B".into()));
        assert!(cell("bare").is_err());
        assert_eq!(code("A\u{1f}B"), "`A␟B`");
    }
}
