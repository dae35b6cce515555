//! Full-text queries: the small query language of TextQuery (words, "quoted phrases", `word*`
//! prefixes, all required) parsed once and rendered for each backend's full-text engine. Only
//! letters and digits reach the engine, so no user input can inject engine operators.

/// One required term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Term {
    /// One or more words that must occur in this order.
    Phrase(Vec<String>),
    /// A word prefix.
    Prefix(String),
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// Parses a query; `None` when nothing searchable remains.
pub fn parse(query: &str) -> Option<Vec<Term>> {
    let mut terms = Vec::new();
    for (i, part) in query.split('"').enumerate() {
        if i % 2 == 1 {
            let phrase = words(part);
            if !phrase.is_empty() {
                terms.push(Term::Phrase(phrase));
            }
            continue;
        }
        for token in part.split_whitespace() {
            let prefix = token.ends_with('*');
            let parts = words(token);
            let last = parts.len().saturating_sub(1);
            for (j, word) in parts.into_iter().enumerate() {
                terms.push(if prefix && j == last { Term::Prefix(word) } else { Term::Phrase(vec![word]) });
            }
        }
    }
    (!terms.is_empty()).then_some(terms)
}

/// SQLite FTS5 MATCH syntax: `"w1 w2" "pre"*` (implicit AND).
pub fn to_fts5(terms: &[Term]) -> String {
    terms
        .iter()
        .map(|term| match term {
            Term::Phrase(words) => format!("\"{}\"", words.join(" ")),
            Term::Prefix(word) => format!("\"{word}\"*"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// PostgreSQL `to_tsquery` syntax: `(w1 <-> w2) & pre:*`.
pub fn to_tsquery(terms: &[Term]) -> String {
    terms
        .iter()
        .map(|term| match term {
            Term::Phrase(words) => format!("({})", words.join(" <-> ")),
            Term::Prefix(word) => format!("{word}:*"),
        })
        .collect::<Vec<_>>()
        .join(" & ")
}

/// Whether every term occurs in `text` (word prefix match, case-insensitive): used to keep a
/// record whose narrative is withheld only when its visible title alone matches, so no result
/// is found through a field the reader may not see.
pub fn matches_visible(terms: &[Term], text: &str) -> bool {
    let visible = words(text);
    terms.iter().all(|term| match term {
        Term::Prefix(word) => visible.iter().any(|w| w.starts_with(word.as_str())),
        Term::Phrase(phrase) => visible
            .windows(phrase.len())
            .any(|window| window.iter().zip(phrase).all(|(w, p)| w.starts_with(p.as_str()))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_words_phrases_and_prefixes_without_operators() {
        let terms = parse(r#"cocaine "controlled delivery" lared* OR; DROP"#).expect("terms");
        assert_eq!(to_fts5(&terms), r#""cocaine" "controlled delivery" "lared"* "or" "drop""#);
        assert_eq!(to_tsquery(&terms), "(cocaine) & (controlled <-> delivery) & lared:* & (or) & (drop)");
        assert_eq!(parse(r#" "" * -- "#), None);
    }

    #[test]
    fn visible_text_matching() {
        let terms = parse("controlled deliv*").expect("terms");
        assert!(matches_visible(&terms, "Controlled delivery, Laredo"));
        assert!(!matches_visible(&terms, "Seizure at Laredo"));
    }
}
