//! Sanctions screening: list files parsed into entries, and investors
//! screened against every list's current version.
//!
//! Lists are platform-wide. Two formats load:
//!
//! - `ofac-sdn`: the US Treasury SDN list as published, `sdn.csv` (12
//!   fields, no header, `-0-` for empty), `alt.csv` (aliases) and optionally
//!   `sdn_comments.csv` (remarks continued). Ethereum-style digital currency
//!   addresses are read from the remarks (`Digital Currency Address - ETH
//!   0x…;`, and any other currency whose address is `0x` and 40 hex digits).
//! - `csv`: a generic file for EU, UN or UK lists with the header row
//!   `name,aliases,addresses,list,reference`; `aliases` and `addresses` hold
//!   `;`-separated values, `list` names the source programme, `reference` is
//!   the entry's unique id in the file.
//!
//! A malformed file is refused whole, naming the file and line.
//!
//! Matching compares names normalised by [`normalize_name`] (case, accents,
//! punctuation, word order). An exact normalised match with an entry's name
//! or alias, or a wallet on an entry, is a **hit**. A Jaro–Winkler similarity
//! (the `strsim` crate) of at least [`POSSIBLE_MATCH_THRESHOLD`] is a
//! **possible match**, which a compliance officer clears with a reason.
//! Screening results carry list data and scores only, never the investor's
//! own name (it is personal data, sealed elsewhere).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::chain::Address;
use crate::investor::normalize_name;

/// Similarity (Jaro–Winkler over normalised names, 0 to 1) from which a
/// name is a possible match. At 0.90, "hans peter muller" and "hans peter
/// mueller" match (0.98), as do most one-letter transliteration variants of
/// names of ten letters or more; unrelated names of similar length score
/// well below 0.8.
pub const POSSIBLE_MATCH_THRESHOLD: f64 = 0.90;

/// Longest list name.
pub const MAX_LIST_NAME: usize = 40;

/// One entry of a list, as loaded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    /// The entry's id in its list (the SDN `ent_num`).
    pub reference: String,
    /// Primary name as listed.
    pub name: String,
    /// Other names (a.k.a., f.k.a., n.k.a.).
    pub aliases: Vec<String>,
    /// Wallets listed for it.
    pub addresses: Vec<Address>,
    /// Programmes or source list, as given.
    pub programs: String,
}

/// A file that does not parse: which file, which line, what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file} line {line}: {message}")]
pub struct ListError {
    /// The file's role (`sdn.csv`, `alt.csv`, `sdn_comments.csv`, the file name).
    pub file: String,
    /// 1-based line.
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

/// A list name: 1 to 40 of letters, digits, `-`, `_`, `.`.
pub fn parse_list_name(raw: &str) -> Result<String, String> {
    let ok = !raw.is_empty()
        && raw.len() <= MAX_LIST_NAME
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(format!(
            "list name {raw:?}: 1 to {MAX_LIST_NAME} letters, digits, '-', '_' or '.'"
        ))
    }
}

/// SHA-256 of the files, in order, each prefixed by its length: the version's
/// content hash (the same files load as the same version).
pub fn content_hash(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())
}

fn reader(data: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(data)
}

/// Records of a header-less file, each with its line; blank lines and the
/// end-of-file marker (`0x1a`) some published files end with are skipped.
fn records(data: &[u8], file: &str) -> Result<Vec<(u64, csv::StringRecord)>, ListError> {
    let mut out = Vec::new();
    for record in reader(data).into_records() {
        let record = record.map_err(|e| ListError {
            file: file.to_owned(),
            line: e.position().map_or(0, |p| p.line()),
            message: format!("not CSV: {e}"),
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let blank = record.iter().all(|f| {
            f.trim_matches(|c: char| c.is_whitespace() || c == '\u{1a}')
                .is_empty()
        });
        if !blank {
            out.push((line, record));
        }
    }
    Ok(out)
}

/// The SDN convention for an empty field.
fn field(record: &csv::StringRecord, i: usize) -> &str {
    match record.get(i).map(str::trim) {
        Some("-0-") | None => "",
        Some(v) => v,
    }
}

fn expect_fields(
    record: &csv::StringRecord,
    n: usize,
    file: &str,
    line: u64,
) -> Result<(), ListError> {
    if record.len() == n {
        Ok(())
    } else {
        Err(ListError {
            file: file.to_owned(),
            line,
            message: format!("expected {n} fields, found {}", record.len()),
        })
    }
}

/// `0x`-and-40-hex-digit addresses listed in SDN remarks as `Digital
/// Currency Address - <currency> <address>`.
pub fn remark_addresses(remarks: &str) -> Vec<Address> {
    const MARK: &str = "Digital Currency Address - ";
    let mut found = Vec::new();
    for part in remarks.split(MARK).skip(1) {
        let mut words = part.split(|c: char| c.is_whitespace() || c == ';');
        let _currency = words.next();
        let Some(address) = words.find(|w| !w.is_empty()) else {
            continue;
        };
        let address = address.trim_end_matches(['.', ',']);
        let hex = address.strip_prefix("0x").unwrap_or("");
        if hex.len() == 40
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
            && let Ok(a) = address.to_ascii_lowercase().parse::<Address>()
            && !found.contains(&a)
        {
            found.push(a);
        }
    }
    found
}

/// Parses the SDN files (see the module header).
pub fn parse_ofac_sdn(
    sdn: &[u8],
    alt: Option<&[u8]>,
    comments: Option<&[u8]>,
) -> Result<Vec<ListEntry>, ListError> {
    let mut entries: Vec<(ListEntry, String)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let ent_num = |raw: &str, file: &str, line: u64| -> Result<String, ListError> {
        raw.parse::<u64>()
            .map(|n| n.to_string())
            .map_err(|_| ListError {
                file: file.to_owned(),
                line,
                message: format!("ent_num {raw:?} is not a number"),
            })
    };
    for (line, r) in records(sdn, "sdn.csv")? {
        expect_fields(&r, 12, "sdn.csv", line)?;
        let reference = ent_num(field(&r, 0), "sdn.csv", line)?;
        let name = field(&r, 1);
        if name.is_empty() {
            return Err(ListError {
                file: "sdn.csv".into(),
                line,
                message: "SDN_Name is empty".into(),
            });
        }
        if index.insert(reference.clone(), entries.len()).is_some() {
            return Err(ListError {
                file: "sdn.csv".into(),
                line,
                message: format!("ent_num {reference} appears twice"),
            });
        }
        let entry = ListEntry {
            reference,
            name: name.to_owned(),
            aliases: Vec::new(),
            addresses: Vec::new(),
            programs: field(&r, 3).to_owned(),
        };
        entries.push((entry, field(&r, 11).to_owned()));
    }
    let find = |index: &HashMap<String, usize>, reference: &str, file: &str, line: u64| {
        index.get(reference).copied().ok_or_else(|| ListError {
            file: file.to_owned(),
            line,
            message: format!("ent_num {reference} is not in sdn.csv"),
        })
    };
    if let Some(alt) = alt {
        for (line, r) in records(alt, "alt.csv")? {
            expect_fields(&r, 5, "alt.csv", line)?;
            let reference = ent_num(field(&r, 0), "alt.csv", line)?;
            let i = find(&index, &reference, "alt.csv", line)?;
            let alias = field(&r, 3);
            if !alias.is_empty() {
                entries[i].0.aliases.push(alias.to_owned());
            }
        }
    }
    if let Some(comments) = comments {
        for (line, r) in records(comments, "sdn_comments.csv")? {
            expect_fields(&r, 2, "sdn_comments.csv", line)?;
            let reference = ent_num(field(&r, 0), "sdn_comments.csv", line)?;
            let i = find(&index, &reference, "sdn_comments.csv", line)?;
            entries[i].1.push(' ');
            entries[i].1.push_str(field(&r, 1));
        }
    }
    Ok(entries
        .into_iter()
        .map(|(mut e, remarks)| {
            e.addresses = remark_addresses(&remarks);
            e
        })
        .collect())
}

/// The generic format's header row.
pub const GENERIC_HEADER: [&str; 5] = ["name", "aliases", "addresses", "list", "reference"];

/// Parses the generic CSV format (see the module header); `file` names it in
/// errors.
pub fn parse_generic_csv(data: &[u8], file: &str) -> Result<Vec<ListEntry>, ListError> {
    let rows = records(data, file)?;
    let err = |line: u64, message: String| ListError {
        file: file.to_owned(),
        line,
        message,
    };
    let Some(((line, header), rows)) = rows.split_first() else {
        return Err(err(1, "empty file: expected the header row".into()));
    };
    let names: Vec<&str> = header.iter().map(str::trim).collect();
    if names != GENERIC_HEADER {
        return Err(err(
            *line,
            format!("the header row must be {}", GENERIC_HEADER.join(",")),
        ));
    }
    let mut seen = HashSet::new();
    let mut entries = Vec::new();
    for (line, r) in rows {
        expect_fields(r, 5, file, *line)?;
        let get = |i: usize| r.get(i).unwrap_or("").trim();
        let (name, reference) = (get(0), get(4));
        if name.is_empty() {
            return Err(err(*line, "name is empty".into()));
        }
        if reference.is_empty() || !seen.insert(reference.to_owned()) {
            return Err(err(
                *line,
                format!("reference {reference:?} is empty or appears twice"),
            ));
        }
        let split = |s: &str| -> Vec<String> {
            s.split(';')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let mut addresses = Vec::new();
        for raw in split(get(2)) {
            let hex = raw.strip_prefix("0x").unwrap_or("");
            let parsed = (hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| raw.to_ascii_lowercase().parse::<Address>().ok())
                .flatten();
            match parsed {
                Some(a) => addresses.push(a),
                None => {
                    return Err(err(
                        *line,
                        format!("address {raw:?} is not 0x followed by 40 hex digits"),
                    ));
                }
            }
        }
        entries.push(ListEntry {
            reference: reference.to_owned(),
            name: name.to_owned(),
            aliases: split(get(1)),
            addresses,
            programs: get(3).to_owned(),
        });
    }
    Ok(entries)
}

/// A loaded version of a list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListVersion {
    /// The list's name.
    pub list: String,
    /// The version's id.
    pub version: Uuid,
    /// SHA-256 of the files loaded.
    pub content_hash: String,
    /// Entries in it.
    pub entries: u64,
    /// When it was loaded.
    pub loaded_at: DateTime<Utc>,
}

/// How a match was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    /// The investor's name and the entry's name.
    Name,
    /// The investor's name and one of the entry's aliases.
    Alias,
    /// One of the investor's wallets is listed.
    Wallet,
}

/// One list entry an investor matches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Match {
    /// The list.
    pub list: String,
    /// The entry's reference in it.
    pub reference: String,
    /// The entry's primary name.
    pub listed_name: String,
    /// The listed name or alias matched, or the wallet.
    pub matched: String,
    /// How.
    pub kind: MatchKind,
    /// Similarity, 1 for exact (and for wallets).
    pub score: f64,
    /// An exact match: a hit.
    pub hit: bool,
    /// A possible match a compliance officer cleared.
    pub cleared: bool,
}

impl Match {
    /// What identifies a match across screenings (a clearance stays with it).
    pub fn key(&self) -> (String, String, String) {
        (
            self.list.clone(),
            self.reference.clone(),
            self.matched.clone(),
        )
    }
}

/// Where an investor's screening stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScreeningStatus {
    /// No match, or every possible match cleared.
    Clear,
    /// A possible match awaits a compliance officer's clearance.
    PossibleMatch,
    /// An exact name or wallet match.
    Hit,
}

impl ScreeningStatus {
    /// The API's and the database's spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            ScreeningStatus::Clear => "clear",
            ScreeningStatus::PossibleMatch => "possible_match",
            ScreeningStatus::Hit => "hit",
        }
    }
}

impl fmt::Display for ScreeningStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ScreeningStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "clear" => Ok(ScreeningStatus::Clear),
            "possible_match" => Ok(ScreeningStatus::PossibleMatch),
            "hit" => Ok(ScreeningStatus::Hit),
            other => Err(format!("unknown screening status {other:?}")),
        }
    }
}

/// An investor's screening result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Screening {
    /// Where it stands.
    pub status: ScreeningStatus,
    /// What matched.
    pub matches: Vec<Match>,
    /// The list versions screened against, by list.
    pub lists: BTreeMap<String, Uuid>,
    /// When.
    pub screened_at: DateTime<Utc>,
}

impl Screening {
    /// The status that `matches` amount to.
    pub fn status_of(matches: &[Match]) -> ScreeningStatus {
        if matches.iter().any(|m| m.hit) {
            ScreeningStatus::Hit
        } else if matches.iter().any(|m| !m.cleared) {
            ScreeningStatus::PossibleMatch
        } else {
            ScreeningStatus::Clear
        }
    }

    /// The hits, for an error or an event: `list/reference (name)`.
    pub fn describe(&self, hits: bool) -> String {
        self.matches
            .iter()
            .filter(|m| m.hit == hits && !m.cleared)
            .map(|m| {
                format!(
                    "{}/{} ({}, {:?} match)",
                    m.list, m.reference, m.listed_name, m.kind
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// An entry in the index.
struct Indexed {
    list: usize,
    reference: String,
    name: String,
}

/// A name's characters counted in 64 buckets (by code point), and its
/// length in characters: enough to bound its Jaro similarity with another
/// name without computing it.
#[derive(Clone)]
struct Profile {
    buckets: [u8; 64],
    chars: usize,
}

impl Profile {
    fn of(s: &str) -> Profile {
        let mut buckets = [0u8; 64];
        let mut chars = 0;
        for c in s.chars() {
            let b = &mut buckets[(c as u32 % 64) as usize];
            *b = b.saturating_add(1);
            chars += 1;
        }
        Profile { buckets, chars }
    }

    /// Whether the two names can reach [`POSSIBLE_MATCH_THRESHOLD`]. Jaro
    /// counts `m` matching characters, at most the multiset intersection of
    /// the two names (which the buckets over-count, never under-count), so
    /// `jaro <= (m/a + m/b + 1) / 3`; Winkler's prefix bonus adds at most
    /// `0.4 * (1 - jaro)`, so a score of 0.9 needs `jaro >= 5/6`, that is
    /// `m/a + m/b >= 1.5`. A pair this rules out cannot match; a pair it
    /// keeps is scored exactly.
    fn may_match(&self, other: &Profile) -> bool {
        let common: usize = self
            .buckets
            .iter()
            .zip(&other.buckets)
            .map(|(x, y)| usize::from(*x.min(y)))
            .sum();
        let (a, b) = (self.chars as f64, other.chars as f64);
        let m = common as f64;
        // Derived for a 0.9 threshold; kept in step by the test below.
        m / a + m / b >= 1.5 - 1e-9
    }
}

/// The current versions of every list, ready to screen against.
pub struct ScreeningIndex {
    lists: Vec<(String, Uuid)>,
    entries: Vec<Indexed>,
    /// Normalised name or alias → (entry, kind, as listed).
    names: Vec<(String, usize, MatchKind, String)>,
    /// Each name's profile, in `names` order.
    profiles: Vec<Profile>,
    exact: HashMap<String, Vec<usize>>,
    wallets: HashMap<Address, Vec<usize>>,
}

impl ScreeningIndex {
    /// An index of `lists`: each list's name, version and entries.
    pub fn new(lists: Vec<(String, Uuid, Vec<ListEntry>)>) -> Self {
        let mut index = ScreeningIndex {
            lists: Vec::new(),
            entries: Vec::new(),
            names: Vec::new(),
            profiles: Vec::new(),
            exact: HashMap::new(),
            wallets: HashMap::new(),
        };
        for (list, version, entries) in lists {
            let list_i = index.lists.len();
            index.lists.push((list, version));
            for e in entries {
                let entry_i = index.entries.len();
                let named = std::iter::once((e.name.clone(), MatchKind::Name))
                    .chain(e.aliases.iter().map(|a| (a.clone(), MatchKind::Alias)));
                for (name, kind) in named {
                    let norm = normalize_name(&name);
                    if norm.is_empty() {
                        continue;
                    }
                    index
                        .exact
                        .entry(norm.clone())
                        .or_default()
                        .push(index.names.len());
                    index.profiles.push(Profile::of(&norm));
                    index.names.push((norm, entry_i, kind, name));
                }
                for a in &e.addresses {
                    index.wallets.entry(*a).or_default().push(entry_i);
                }
                index.entries.push(Indexed {
                    list: list_i,
                    reference: e.reference,
                    name: e.name,
                });
            }
        }
        index
    }

    /// The versions it holds, by list.
    pub fn versions(&self) -> BTreeMap<String, Uuid> {
        self.lists.iter().cloned().collect()
    }

    /// Names (primary and aliases) indexed.
    pub fn names(&self) -> usize {
        self.names.len()
    }

    fn found(&self, entry: usize, kind: MatchKind, matched: &str, score: f64) -> Match {
        let e = &self.entries[entry];
        Match {
            list: self.lists[e.list].0.clone(),
            reference: e.reference.clone(),
            listed_name: e.name.clone(),
            matched: matched.to_owned(),
            kind,
            score,
            hit: score >= 1.0,
            cleared: false,
        }
    }

    /// Screens a name and wallets at `now`; a possible match cleared in
    /// `previous` stays cleared.
    pub fn screen(
        &self,
        name: &str,
        wallets: &[Address],
        previous: Option<&Screening>,
        now: DateTime<Utc>,
    ) -> Screening {
        let norm = normalize_name(name);
        let mut matches: Vec<Match> = Vec::new();
        let exact: HashSet<usize> = self
            .exact
            .get(&norm)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let profile = Profile::of(&norm);
        for (i, (candidate, entry, kind, listed)) in self.names.iter().enumerate() {
            let score = if exact.contains(&i) {
                1.0
            } else if profile.may_match(&self.profiles[i]) {
                strsim::jaro_winkler(&norm, candidate)
            } else {
                continue;
            };
            if score >= POSSIBLE_MATCH_THRESHOLD {
                // An exact match can only come from the exact index: a
                // similarity that rounds to 1 is still a possible match.
                let score = if exact.contains(&i) {
                    1.0
                } else {
                    score.min(0.999)
                };
                matches.push(self.found(*entry, *kind, listed, score));
            }
        }
        for w in wallets {
            for entry in self.wallets.get(w).into_iter().flatten() {
                matches.push(self.found(*entry, MatchKind::Wallet, &w.to_checksum(None), 1.0));
            }
        }
        // One match per entry and matched text, the strongest first.
        matches.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.reference.cmp(&b.reference))
        });
        let mut seen = HashSet::new();
        matches.retain(|m| seen.insert(m.key()));
        let cleared: HashSet<_> = previous
            .map(|p| {
                p.matches
                    .iter()
                    .filter(|m| m.cleared)
                    .map(Match::key)
                    .collect()
            })
            .unwrap_or_default();
        for m in &mut matches {
            m.cleared = !m.hit && cleared.contains(&m.key());
        }
        Screening {
            status: Screening::status_of(&matches),
            matches,
            lists: self.versions(),
            screened_at: now,
        }
    }
}

/// A new sanctions hit on an approved investor.
pub const INVESTOR_SANCTIONS_HIT: &str = "investor.sanctions_hit";
/// A compliance officer cleared an investor's possible matches.
pub const INVESTOR_SCREENING_CLEARED: &str = "investor.screening_cleared";
/// The job that screens every approved investor again after a list changes.
pub const RESCREEN_KIND: &str = "sanctions-rescreen";

/// What a rescreen changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RescreenReport {
    /// Approved investors screened.
    pub screened: u64,
    /// New hits among them (each raised `investor.sanctions_hit`).
    pub hits: u64,
}

/// Sanctions lists and the screening of approved investors. System paths:
/// the CLI and the rescreen job, never a handler.
#[async_trait::async_trait]
pub trait SanctionsRepository: Send + Sync {
    /// Makes `entries` the current version of `list`, atomically, unless its
    /// content hash is the current version's (answered with `false`); a new
    /// version enqueues the rescreen job in the same transaction.
    async fn system_load_list(
        &self,
        list: &str,
        format: &str,
        content_hash: &str,
        entries: &[ListEntry],
    ) -> crate::RepoResult<(ListVersion, bool)>;

    /// Every list's current version.
    async fn system_current_lists(&self) -> crate::RepoResult<Vec<ListVersion>>;

    /// Screens every approved investor again against the current lists;
    /// a new hit raises `investor.sanctions_hit` with an audit entry.
    async fn system_rescreen_approved(&self) -> crate::RepoResult<RescreenReport>;
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDN: &str = "\
36,\"AEROCARIBBEAN AIRLINES\",-0- ,\"CUBA\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,\"Havana, Cuba.\"
306,\"BANCO NACIONAL DE CUBA\",-0- ,\"CUBA\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,\"a.k.a. 'BNC'.\"
9001,\"PETROV, Ivan Sergeyevich\",\"individual\",\"CYBER2\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,\"DOB 01 Jan 1980; Digital Currency Address - ETH 0x7F367cC41522cE07553e823bf3be79A889DEbe1B; alt. Digital Currency Address - XBT 1BoatSLRHtKNngkdXEeobR76b53LETtpyT;\"
\u{1a}
";
    const ALT: &str = "\
306,219,\"aka\",\"NATIONAL BANK OF CUBA\",-0-
9001,5000,\"aka\",\"PETROV, Vanya\",-0-
";

    #[test]
    fn the_sdn_files_parse_with_aliases_and_addresses() {
        let entries = parse_ofac_sdn(SDN.as_bytes(), Some(ALT.as_bytes()), None).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[1].aliases, ["NATIONAL BANK OF CUBA"]);
        assert_eq!(entries[2].reference, "9001");
        assert_eq!(
            entries[2].addresses,
            ["0x7f367cc41522ce07553e823bf3be79a889debe1b"
                .parse::<Address>()
                .unwrap()]
        );
        assert!(entries[0].addresses.is_empty());
    }

    #[test]
    fn comments_continue_the_remarks() {
        let sdn = "77,\"LONG REMARKS LTD\",-0- ,\"X\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,\"See comments\"\n";
        let comments =
            "77,\"Digital Currency Address - USDT 0x00000000000000000000000000000000000000aa;\"\n";
        let entries = parse_ofac_sdn(sdn.as_bytes(), None, Some(comments.as_bytes())).unwrap();
        assert_eq!(entries[0].addresses.len(), 1);
    }

    #[test]
    fn a_malformed_file_names_the_line() {
        let bad = format!("{SDN}42,\"SHORT\"\n");
        let e = parse_ofac_sdn(bad.as_bytes(), None, None).unwrap_err();
        assert_eq!(e.file, "sdn.csv");
        assert_eq!(e.line, 5);
        assert!(e.message.contains("expected 12 fields"), "{e}");
        let alt = "12345,1,\"aka\",\"NOBODY\",-0-\n";
        let e = parse_ofac_sdn(SDN.as_bytes(), Some(alt.as_bytes()), None).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("alt.csv", 1));
        assert!(e.message.contains("not in sdn.csv"), "{e}");
    }

    #[test]
    fn the_generic_format_parses_and_checks_its_header() {
        let data = "name,aliases,addresses,list,reference\n\
                    Oleg Ivanov,Oleg Ivanoff;O. Ivanov,0x00000000000000000000000000000000000000bb,EU,EU.1\n";
        let entries = parse_generic_csv(data.as_bytes(), "eu.csv").unwrap();
        assert_eq!(entries[0].aliases.len(), 2);
        assert_eq!(entries[0].addresses.len(), 1);
        let e = parse_generic_csv(b"who,what\n", "eu.csv").unwrap_err();
        assert_eq!(e.line, 1);
        let e = parse_generic_csv(
            b"name,aliases,addresses,list,reference\nA,,0x12,EU,1\n",
            "eu.csv",
        )
        .unwrap_err();
        assert_eq!(e.line, 2);
    }

    fn index() -> ScreeningIndex {
        let entries = parse_ofac_sdn(SDN.as_bytes(), Some(ALT.as_bytes()), None).unwrap();
        ScreeningIndex::new(vec![("ofac".into(), Uuid::nil(), entries)])
    }

    #[test]
    fn exact_names_aliases_and_wallets_are_hits() {
        let now = Utc::now();
        let by_alias = index().screen("Vanya Petrov", &[], None, now);
        assert_eq!(by_alias.status, ScreeningStatus::Hit);
        assert_eq!(by_alias.matches[0].kind, MatchKind::Alias);
        assert_eq!(by_alias.matches[0].reference, "9001");
        let wallet: Address = "0x7f367cc41522ce07553e823bf3be79a889debe1b"
            .parse()
            .unwrap();
        let by_wallet = index().screen("Someone Else Entirely", &[wallet], None, now);
        assert_eq!(by_wallet.status, ScreeningStatus::Hit);
        assert_eq!(by_wallet.matches[0].kind, MatchKind::Wallet);
        let clean = index().screen("Maria Fernanda Alves", &[], None, now);
        assert_eq!(clean.status, ScreeningStatus::Clear);
        assert!(clean.matches.is_empty(), "{:?}", clean.matches);
    }

    /// The prefilter never drops a pair that scores at the threshold: over
    /// many random near and far variants of names, whenever Jaro-Winkler
    /// reaches it, the profiles agreed they might.
    #[test]
    fn the_prefilter_keeps_every_possible_match() {
        use rand::{Rng, SeedableRng};
        assert_eq!(
            POSSIBLE_MATCH_THRESHOLD, 0.90,
            "the bound is derived for 0.9"
        );
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let alphabet: Vec<char> = "abcdeilmnoprstuvyz ".chars().collect();
        let mut kept = 0;
        for _ in 0..20_000 {
            let len = rng.random_range(3..24);
            let a: String = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            let mut b: Vec<char> = a.chars().collect();
            for _ in 0..rng.random_range(0..4) {
                let i = rng.random_range(0..b.len());
                match rng.random_range(0..3) {
                    0 => b[i] = alphabet[rng.random_range(0..alphabet.len())],
                    1 => {
                        b.remove(i);
                        if b.is_empty() {
                            b.push('a');
                        }
                    }
                    _ => b.insert(i, alphabet[rng.random_range(0..alphabet.len())]),
                }
            }
            let b: String = b.into_iter().collect();
            if strsim::jaro_winkler(&a, &b) >= POSSIBLE_MATCH_THRESHOLD {
                kept += 1;
                assert!(Profile::of(&a).may_match(&Profile::of(&b)), "{a:?} ~ {b:?}");
            }
        }
        assert!(kept > 1_000, "the test saw enough matching pairs ({kept})");
    }

    #[test]
    fn close_names_are_possible_matches_and_clearances_stay() {
        let now = Utc::now();
        let first = index().screen("Ivan Sergeevich Petrov", &[], None, now);
        assert_eq!(first.status, ScreeningStatus::PossibleMatch, "{first:?}");
        let mut cleared = first.clone();
        for m in &mut cleared.matches {
            m.cleared = true;
        }
        let again = index().screen("Ivan Sergeevich Petrov", &[], Some(&cleared), now);
        assert_eq!(again.status, ScreeningStatus::Clear);
    }
}
