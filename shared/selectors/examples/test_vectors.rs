//! Recomputes the test vectors of docs/selectors.md from their inputs.
//!
//! `cargo run -p interlock-selectors --example test_vectors` reports whether the document is
//! current; with `-- --write` it rewrites the document in place (after a deliberate change to
//! the rules, or to add vectors: add the input columns of a row, leave the rest empty).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/selectors.md");
    let write = std::env::args().any(|a| a == "--write");
    let doc = match std::fs::read_to_string(&path) {
        Ok(doc) => doc,
        Err(e) => {
            eprintln!("cannot read {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let regenerated = match interlock_selectors::vectors::regenerate(&doc) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot compute the vectors: {e}");
            return ExitCode::FAILURE;
        }
    };
    if regenerated == doc {
        println!("{} is current", path.display());
        return ExitCode::SUCCESS;
    }
    if write {
        if let Err(e) = std::fs::write(&path, regenerated) {
            eprintln!("cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("rewrote {}", path.display());
        ExitCode::SUCCESS
    } else {
        println!("{} is out of date: run again with --write", path.display());
        ExitCode::FAILURE
    }
}
