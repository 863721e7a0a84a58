//! Screening cost against a list the size of the SDN list: 40,000 names
//! (entries and aliases) of two to four random words, then 500 screenings of
//! random names, timed; the same screenings scored against every name with
//! Jaro-Winkler alone (no prefilter) for comparison. Deterministic inputs.
//! Run: `cargo run --release -p rwa-domain --example screening`.

use std::time::Instant;

use chrono::Utc;
use rand::{Rng, SeedableRng};
use rwa_domain::investor::normalize_name;
use rwa_domain::sanctions::{ListEntry, ScreeningIndex};

fn word(rng: &mut impl Rng) -> String {
    let syllables = [
        "ka", "ro", "mi", "sha", "vel", "an", "dor", "is", "ten", "ul", "bar", "no",
    ];
    (0..rng.random_range(2..4))
        .map(|_| syllables[rng.random_range(0..syllables.len())])
        .collect()
}

fn name(rng: &mut impl Rng) -> String {
    (0..rng.random_range(2..5))
        .map(|_| word(rng))
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let entries: Vec<ListEntry> = (0..20_000)
        .map(|i| ListEntry {
            reference: i.to_string(),
            name: name(&mut rng),
            aliases: vec![name(&mut rng)],
            addresses: Vec::new(),
            programs: String::new(),
        })
        .collect();
    let names: Vec<String> = entries
        .iter()
        .flat_map(|e| std::iter::once(&e.name).chain(&e.aliases))
        .map(|n| normalize_name(n))
        .collect();
    let index = ScreeningIndex::new(vec![("bench".into(), uuid::Uuid::nil(), entries)]);
    let queries: Vec<String> = (0..500).map(|_| name(&mut rng)).collect();

    let start = Instant::now();
    let mut found = 0;
    for q in &queries {
        found += index.screen(q, &[], None, Utc::now()).matches.len();
    }
    let indexed = start.elapsed() / queries.len() as u32;

    let start = Instant::now();
    let mut brute = 0;
    for q in &queries {
        let q = normalize_name(q);
        brute += names
            .iter()
            .filter(|n| strsim::jaro_winkler(&q, n) >= 0.9)
            .count();
    }
    let plain = start.elapsed() / queries.len() as u32;
    println!(
        "names={} screenings={} per_screening_with_prefilter={indexed:?} per_screening_jaro_winkler_only={plain:?} matches={found} brute_force_matches={brute}",
        index.names(),
        queries.len()
    );
}
