//! `interlock generate`: realistic synthetic records for many agencies, as record files (NDJSON,
//! see [`crate::record_json`]), for demos, load tests and the records benchmark.
//!
//! Reproducible: the same `--seed`, `--records` and `--agencies` give byte-identical files.
//! A controlled share (`--overlap`) of the selectors (phones, plates, VINs, accounts, e-mail and
//! postal addresses) is drawn from one pool that every agency draws from, so the same identifier
//! turns up in several agencies' records and deconfliction has something to find; the others are
//! derived from the agency and a counter, so they are (practically) unique to one agency.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::record_json::{
    JsonIdentification, JsonName, JsonOrganization, JsonPerson, JsonRecord, JsonSelector,
};

#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// Records per agency.
    #[arg(long, default_value_t = 1000)]
    pub records: u64,
    /// Agency codes, comma-separated; one file `{CODE}.ndjson` is written per agency.
    #[arg(long, value_delimiter = ',', default_value = "ICE,DEA,FBI,ATF,CBP")]
    pub agencies: Vec<String>,
    /// Seed of the generator: the same seed writes the same files.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Share (0 to 1) of selectors drawn from the pool every agency shares.
    #[arg(long, default_value_t = 0.05)]
    pub overlap: f64,
    /// Folder the files are written to (created if missing).
    #[arg(long, default_value = "./records")]
    pub out: PathBuf,
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    anyhow::ensure!((0.0..=1.0).contains(&args.overlap), "--overlap must be between 0 and 1");
    anyhow::ensure!(!args.agencies.is_empty(), "--agencies names no agency");
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    for (index, agency) in args.agencies.iter().enumerate() {
        let code = agency.trim().to_ascii_uppercase();
        let path = args.out.join(format!("{code}.ndjson"));
        let file =
            std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut out = std::io::BufWriter::new(file);
        let generator = Generator::new(&code, index as u64, args.seed, args.overlap, args.records);
        for record in generator.take(args.records as usize) {
            serde_json::to_writer(&mut out, &record)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        println!("{}: {} records", path.display(), args.records);
    }
    Ok(())
}

const SURNAMES: &[&str] = &[
    "Garcia",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Perez",
    "Sanchez",
    "Ramirez",
    "Torres",
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Miller",
    "Davis",
    "Wilson",
    "Anderson",
    "Taylor",
    "Thomas",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Thompson",
    "White",
    "Harris",
    "Clark",
    "Lewis",
    "Robinson",
    "Walker",
    "Nguyen",
    "Kim",
    "Patel",
    "Cruz",
    "Flores",
    "Rivera",
    "Gomez",
    "Diaz",
    "Reyes",
    "Morales",
    "Ortiz",
    "Castillo",
    "Guzman",
    "Mendoza",
    "Vargas",
    "Romero",
    "Herrera",
    "Medina",
    "Aguilar",
    "Jimenez",
    "Ruiz",
    "Chavez",
];
const GIVEN: &[&str] = &[
    "Luis", "Carlos", "Jose", "Juan", "Miguel", "Maria", "Ana", "Sofia", "Elena", "Rosa", "James", "John",
    "Robert", "Michael", "William", "David", "Richard", "Joseph", "Linda", "Patricia", "Jennifer", "Barbara",
    "Susan", "Jessica", "Daniel", "Matthew", "Anthony", "Mark", "Paul", "Steven", "Andrew", "Kevin", "Brian",
    "Tran", "Minh", "Raj", "Priya", "Omar", "Ahmed", "Fatima", "Viktor", "Ivan", "Olga", "Dmitri", "Chen",
    "Wei",
];
const MIDDLE: &[&str] = &["", "", "", "A", "J", "M", "R", "Antonio", "Lee", "Marie", "Alejandro"];
const STREETS: &[&str] = &[
    "Main",
    "Elm",
    "Oak",
    "Commerce",
    "Industrial",
    "Harbor",
    "Frontage",
    "Mesa",
    "Rio Grande",
    "Border",
    "Market",
    "Congress",
    "Mockingbird",
    "Westheimer",
    "Bissonnet",
    "Zarzamora",
    "Alameda",
    "Flagler",
    "Biscayne",
    "Pine",
];
const STREET_KINDS: &[&str] = &["Street", "St", "Avenue", "Ave", "Road", "Blvd", "Drive", "Lane"];
/// (city, state, ZIP prefix, phone area codes)
const CITIES: &[(&str, &str, &str, &[u32])] = &[
    ("Dallas", "TX", "752", &[214, 469, 972]),
    ("Houston", "TX", "770", &[713, 281, 832]),
    ("San Antonio", "TX", "782", &[210]),
    ("Laredo", "TX", "780", &[956]),
    ("El Paso", "TX", "799", &[915]),
    ("Phoenix", "AZ", "850", &[602, 480]),
    ("Tucson", "AZ", "857", &[520]),
    ("San Diego", "CA", "921", &[619, 858]),
    ("Los Angeles", "CA", "900", &[213, 310, 323]),
    ("Miami", "FL", "331", &[305, 786]),
    ("Atlanta", "GA", "303", &[404, 678]),
    ("Chicago", "IL", "606", &[312, 773]),
    ("New York", "NY", "100", &[212, 646, 718]),
];
const ORGANIZATIONS: &[&str] = &[
    "Transportes del Norte SA de CV",
    "Gulf Coast Freight LLC",
    "Rio Bravo Auto Sales",
    "Sunrise Money Services",
    "Cartel del Golfo cell",
    "Westside Logistics Inc",
    "Pacific Rim Imports",
    "Lone Star Check Cashing",
    "Border Express Trucking",
    "Palm Holdings Ltd",
];
const DRUGS: &[&str] =
    &["methamphetamine", "fentanyl powder", "cocaine", "heroin", "counterfeit M30 pills", "marijuana"];
const PLACES: &[&str] = &[
    "a stash house",
    "a commercial warehouse",
    "the port of entry",
    "a residence",
    "a storage unit",
    "a truck stop",
    "a hotel room",
    "a body shop",
];
const CATEGORIES: &[&str] = &[
    "INVESTIGATION_REPORT",
    "WIRETAP_INTERCEPT",
    "FINANCIAL_INVESTIGATION",
    "INTELLIGENCE_REPORT",
    "SEIZURE",
    "ARREST",
    "INFORMANT_REPORT",
];

/// splitmix64: one well-mixed number per identifier id, so a shared id gives every agency the
/// same identifier without any shared state between agencies' generators.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

const VIN_CHARS: &[u8] = b"ABCDEFGHJKLMNPRSTUVWXYZ0123456789";

fn vin_value(c: u8) -> u32 {
    match c {
        b'0'..=b'9' => u32::from(c - b'0'),
        b'A' | b'J' => 1,
        b'B' | b'K' | b'S' => 2,
        b'C' | b'L' | b'T' => 3,
        b'D' | b'M' | b'U' => 4,
        b'E' | b'N' | b'V' => 5,
        b'F' | b'W' => 6,
        b'G' | b'P' | b'X' => 7,
        b'H' | b'Y' => 8,
        _ => 9,
    }
}

/// A North American VIN (first character 1) with a correct check digit, from an id.
fn vin(id: u64) -> String {
    let mut h = mix(id ^ 0x5649_4E00);
    let mut chars = [b'1'; 17];
    for c in chars.iter_mut().skip(1) {
        *c = VIN_CHARS[(h % VIN_CHARS.len() as u64) as usize];
        h = mix(h);
    }
    const WEIGHTS: [u32; 17] = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];
    let sum: u32 = chars.iter().zip(WEIGHTS).map(|(c, w)| vin_value(*c) * w).sum();
    chars[8] = match sum % 11 {
        10 => b'X',
        d => b'0' + d as u8,
    };
    String::from_utf8_lossy(&chars).into_owned()
}

/// A selector of `kind_index` (0 phone, 1 plate, 2 VIN, 3 account, 4 e-mail, 5 address) from an id,
/// written the way case systems hold them (formats vary; normalisation makes them match).
fn selector(kind_index: u64, id: u64) -> JsonSelector {
    let h = mix(id.wrapping_mul(7).wrapping_add(kind_index));
    let (city, state, zip, areas) = CITIES[(h % CITIES.len() as u64) as usize];
    let (kind, value, region) = match kind_index {
        0 => {
            let area = areas[((h >> 8) % areas.len() as u64) as usize];
            let exchange = 200 + (h >> 12) % 800;
            let line = (h >> 24) % 10_000;
            let value = match (h >> 40) % 3 {
                0 => format!("({area}) {exchange}-{line:04}"),
                1 => format!("{area}-{exchange}-{line:04}"),
                _ => format!("+1 {area} {exchange} {line:04}"),
            };
            ("PHONE", value, "US".to_owned())
        }
        1 => {
            let mut plate = String::new();
            let mut x = h;
            for i in 0..7 {
                let alphabet: &[u8] = if i < 3 { b"ABCDEFGHJKLMNPRSTUVWXYZ" } else { b"0123456789" };
                plate.push(alphabet[(x % alphabet.len() as u64) as usize] as char);
                x = mix(x);
            }
            ("VEHICLE_PLATE", plate, state.to_owned())
        }
        2 => ("VIN", vin(id), String::new()),
        3 => ("BANK_ACCOUNT", format!("{:012}", h % 1_000_000_000_000), String::new()),
        4 => {
            let surname = SURNAMES[(h % SURNAMES.len() as u64) as usize].to_ascii_lowercase();
            let domain = ["gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "protonmail.com"]
                [(h >> 16) as usize % 5];
            ("EMAIL", format!("{surname}{}@{domain}", (h >> 20) % 10_000), String::new())
        }
        _ => {
            let street = STREETS[((h >> 8) % STREETS.len() as u64) as usize];
            let kind = STREET_KINDS[((h >> 16) % STREET_KINDS.len() as u64) as usize];
            let value = format!(
                "{} {street} {kind}, {city}, {state} {zip}{:02}",
                100 + (h >> 24) % 9900,
                (h >> 40) % 100
            );
            ("POSTAL_ADDRESS", value, String::new())
        }
    };
    JsonSelector { kind: kind.to_owned(), value, region, entity_id: String::new() }
}

/// The records of one agency, in record-number order.
pub struct Generator {
    code: String,
    agency: u64,
    rng: StdRng,
    overlap: f64,
    /// Identifiers in the shared pool; scales with the file so overlaps stay findable.
    pool: u64,
    next: u64,
    unique: u64,
}

/// 2021-01-01T00:00:00Z: generated report times fall in the four years after it.
const BASE_SECONDS: i64 = 1_609_459_200;

impl Generator {
    /// `agency` is the agency's position in the list (it keeps unique identifiers apart).
    pub fn new(code: &str, agency: u64, seed: u64, overlap: f64, records: u64) -> Self {
        Self {
            code: code.to_owned(),
            agency,
            rng: StdRng::seed_from_u64(mix(seed) ^ mix(agency + 1)),
            overlap,
            pool: (records / 10).max(50),
            next: 0,
            unique: 0,
        }
    }

    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.rng.random_range(0..list.len())]
    }

    fn selector_id(&mut self) -> u64 {
        if self.rng.random_bool(self.overlap) {
            self.rng.random_range(0..self.pool)
        } else {
            self.unique += 1;
            ((self.agency + 1) << 40) | self.unique
        }
    }

    fn record(&mut self) -> JsonRecord {
        self.next += 1;
        let category = self.pick(CATEGORIES);
        let sensitivity = match self.rng.random_range(0..10) {
            0..=2 => "UNRESTRICTED",
            3..=6 => "LAW_ENFORCEMENT_SENSITIVE",
            7..=8 => "RESTRICTED",
            _ => "HIGHLY_RESTRICTED",
        };
        let mut caveats = Vec::new();
        if category == "WIRETAP_INTERCEPT" {
            caveats.push("TITLE_III".to_owned());
        }
        if self.rng.random_bool(0.1) {
            caveats.push("ORIGINATOR_CONTROLLED".to_owned());
        }
        let report = BASE_SECONDS + self.rng.random_range(0..4 * 365 * 86_400);
        let occur = report - self.rng.random_range(0..90 * 86_400);
        let time = |s: i64| {
            chrono::DateTime::from_timestamp(s, 0)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default()
        };
        let (city, state, _, _) = CITIES[self.rng.random_range(0..CITIES.len())];
        let drug = self.pick(DRUGS);
        let place = self.pick(PLACES);
        let mut persons = Vec::new();
        for p in 0..self.rng.random_range(1..=3) {
            let surname = self.pick(SURNAMES).to_owned();
            let given = self.pick(GIVEN).to_owned();
            let middle = self.pick(MIDDLE).to_owned();
            let birth = format!(
                "{}-{:02}-{:02}",
                self.rng.random_range(1955..2004),
                self.rng.random_range(1..=12),
                self.rng.random_range(1..=28)
            );
            let mut identifications = Vec::new();
            if self.rng.random_bool(0.3) {
                identifications.push(JsonIdentification {
                    category: "DRIVERS_LICENSE".to_owned(),
                    number: format!("{:08}", self.rng.random_range(0..100_000_000u64)),
                    issuer: state.to_owned(),
                });
            }
            let role = if p == 0 {
                "SUSPECT"
            } else {
                ["ASSOCIATE", "WITNESS", "OTHER"][self.rng.random_range(0..3)]
            };
            let aliases = if self.rng.random_bool(0.15) {
                vec![JsonName {
                    surname: self.pick(SURNAMES).to_owned(),
                    given: given.clone(),
                    ..Default::default()
                }]
            } else {
                Vec::new()
            };
            persons.push(JsonPerson {
                entity_id: format!("p{}", p + 1),
                role: role.to_owned(),
                name: JsonName { surname, given, middle, suffix: String::new() },
                birth_date: Some(birth),
                nationality: if self.rng.random_bool(0.6) { "USA" } else { "MEX" }.to_owned(),
                identifications,
                aliases,
            });
        }
        let organizations = if self.rng.random_bool(0.3) {
            vec![JsonOrganization {
                entity_id: "o1".to_owned(),
                display_name: self.pick(ORGANIZATIONS).to_owned(),
                role: "OTHER".to_owned(),
                country: if self.rng.random_bool(0.5) { "USA" } else { "MEX" }.to_owned(),
                description: String::new(),
            }]
        } else {
            Vec::new()
        };
        let mut selectors = Vec::new();
        for _ in 0..self.rng.random_range(2..=5) {
            let kind = self.rng.random_range(0..6);
            let id = self.selector_id();
            let mut s = selector(kind, id);
            s.entity_id = persons[self.rng.random_range(0..persons.len())].entity_id.clone();
            selectors.push(s);
        }
        let subject = &persons[0].name;
        let subject = format!("{} {}", subject.given, subject.surname);
        let quantity = self.rng.random_range(1..200);
        let title = match category {
            "SEIZURE" => format!("Seizure of {quantity} kg of {drug}, {city} {state}"),
            "ARREST" => format!("Arrest of {subject}, {city} {state}"),
            "WIRETAP_INTERCEPT" => format!("Intercepted call of {subject} about a {drug} shipment"),
            "FINANCIAL_INVESTIGATION" => format!("Structured deposits linked to {subject}, {city}"),
            "INTELLIGENCE_REPORT" => format!("{subject}: suspected {drug} distribution cell, {city}"),
            "INFORMANT_REPORT" => format!("Source reporting on {subject} and {place} in {city}"),
            _ => format!("Investigation of {subject} for {drug} trafficking, {city} {state}"),
        };
        let selector_text: Vec<String> = selectors.iter().map(|s| s.value.clone()).collect();
        let narrative = format!(
            "On the reported date agents of {code} conducted surveillance of {place} in {city}, {state}. \
             {subject} was observed meeting an unidentified associate and transferring packages consistent \
             with {drug} distribution. Records checks and subscriber returns associated the subject with \
             {selectors}. A consent search recovered approximately {quantity} kilograms of {drug} and \
             ${cash} in bulk currency. The case remains open; further dissemination requires the \
             originator's approval.",
            code = self.code,
            selectors = selector_text.join(", "),
            cash = self.rng.random_range(1_000..500_000),
        );
        let intelligence = category == "INTELLIGENCE_REPORT";
        JsonRecord {
            record_number: format!(
                "{}-{}-{:08}",
                self.code,
                2021 + (report - BASE_SECONDS) / (365 * 86_400),
                self.next
            ),
            category: category.to_owned(),
            sensitivity: sensitivity.to_owned(),
            caveats,
            title,
            narrative,
            occur_time: Some(time(occur)),
            report_time: Some(time(report)),
            source_reliability: intelligence.then(|| "USUALLY_RELIABLE".to_owned()),
            content_validity: intelligence.then(|| "PROBABLE".to_owned()),
            control_official: if intelligence {
                format!("SAC {} {} field office", self.code, city)
            } else {
                String::new()
            },
            last_validate_time: None,
            review_by_time: None,
            persons,
            organizations,
            selectors,
        }
    }
}

impl Iterator for Generator {
    type Item = JsonRecord;

    fn next(&mut self) -> Option<JsonRecord> {
        Some(self.record())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_records_and_overlap_is_shared() {
        let a: Vec<_> = Generator::new("ICE", 0, 7, 0.5, 200).take(200).collect();
        let b: Vec<_> = Generator::new("ICE", 0, 7, 0.5, 200).take(200).collect();
        assert_eq!(a, b);
        let dea: Vec<_> = Generator::new("DEA", 1, 7, 0.5, 200).take(200).collect();
        let values = |records: &[JsonRecord]| {
            records
                .iter()
                .flat_map(|r| r.selectors.iter().map(|s| s.value.clone()))
                .collect::<std::collections::HashSet<_>>()
        };
        assert!(values(&a).intersection(&values(&dea)).count() > 10, "shared selectors overlap");
        for record in &a {
            record.to_proto().unwrap();
        }
    }
}
