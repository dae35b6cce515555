//! `phone-bench`: phone-number normalisation (parse, validate, E.164) per number, for numbers of
//! one country and of forty, through `interlock_selectors::normalize` and, beside it, through the
//! `phonenumber` crate's own `is_valid` and E.164 formatter (docs/benchmarks.md, "Phone numbers").
//! Not a test: run it in release mode.

use std::time::Instant;

use interlock_selectors::{SelectorKind, normalize};
use phonenumber::Mode;

/// (default country, number as written): numbers of the kinds agencies exchange.
const FORTY_COUNTRIES: [(&str, &str); 40] = [
    ("US", "214-555-0147"),
    ("GB", "020 7946 0018"),
    ("MX", "55 1234 5678"),
    ("DE", "030 123456"),
    ("FR", "01 23 45 67 89"),
    ("CO", "601 2345678"),
    ("ES", "912 345 678"),
    ("IT", "06 1234 5678"),
    ("BR", "11 2345-6789"),
    ("AR", "11 4123-4567"),
    ("CA", "416-555-0199"),
    ("NL", "020 123 4567"),
    ("CN", "010 1234 5678"),
    ("IN", "011 2345 6789"),
    ("JP", "03-1234-5678"),
    ("RU", "495 123-45-67"),
    ("AU", "02 9123 4567"),
    ("PE", "1 2345678"),
    ("VE", "212 1234567"),
    ("GT", "2234 5678"),
    ("HN", "2234 5678"),
    ("SV", "2234 5678"),
    ("DO", "809 555 0123"),
    ("PA", "223 4567"),
    ("CR", "2234 5678"),
    ("EC", "2 234 5678"),
    ("CL", "2 2345 6789"),
    ("TR", "212 345 67 89"),
    ("PK", "21 12345678"),
    ("AF", "20 234 5678"),
    ("NG", "1 234 5678"),
    ("ZA", "21 123 4567"),
    ("PH", "2 8123 4567"),
    ("TH", "2 123 4567"),
    ("VN", "24 3123 4567"),
    ("KR", "2-312-3456"),
    ("PL", "22 123 45 67"),
    ("UA", "44 123 4567"),
    ("IL", "2-123-4567"),
    ("EG", "2 23456789"),
];
const ONE_COUNTRY: [(&str, &str); 3] =
    [("US", "214-555-0147"), ("US", "(312) 555-0199"), ("US", "+1 415 555 0123")];
const CALLS: usize = 20_000;

fn measure(label: &str, numbers: &[(&str, &str)], normalise: impl Fn(&str, &str) -> bool) {
    let started = Instant::now();
    let valid = (0..CALLS).filter(|i| {
        let (region, number) = numbers[i % numbers.len()];
        normalise(number, region)
    });
    let valid = valid.count();
    let per_call = started.elapsed().as_secs_f64() * 1e6 / CALLS as f64;
    println!("{label}: {per_call:.1} µs per number ({valid} of {CALLS} valid)");
}

fn main() {
    let ours = |number: &str, region: &str| normalize(SelectorKind::Phone, number, region).is_ok();
    let the_crates = |number: &str, region: &str| {
        let Ok(country) = region.parse::<phonenumber::country::Id>() else { return false };
        phonenumber::parse(Some(country), number)
            .is_ok_and(|parsed| parsed.is_valid() && !parsed.format().mode(Mode::E164).to_string().is_empty())
    };
    for round in 1..=2 {
        println!("round {round}");
        measure("  interlock_selectors::normalize, 1 country  ", &ONE_COUNTRY, ours);
        measure("  interlock_selectors::normalize, 40 countries", &FORTY_COUNTRIES, ours);
        measure("  phonenumber is_valid + E.164,   1 country  ", &ONE_COUNTRY, the_crates);
        measure("  phonenumber is_valid + E.164,   40 countries", &FORTY_COUNTRIES, the_crates);
    }
}
