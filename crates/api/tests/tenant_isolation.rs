//! Tenant isolation, checked on the source: every port the handlers hold
//! (`ApiPorts`) scopes its request-path methods to the caller's
//! organization (`org: OrgId` first), and the methods that are not scoped
//! are named for what they are: `system_*` (workers, scheduler, indexer, CLI)
//! and `auth_*` (credential lookups before an organization is known). No
//! handler calls a `system_*` method, and only authentication calls
//! `auth_*` ones; an exception must be listed here with its reason.

use std::path::{Path, PathBuf};

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// Ports whose methods are not tenant data, with the reason.
const PLATFORM_PORTS: &[(&str, &str)] = &[
    ("HealthCheck", "probes of dependencies, no tenant data"),
    (
        "IndexVerifier",
        "takes the caller's organization through the token it verifies",
    ),
    (
        "HoldingsView",
        "reads by token, which the handler first loads in the caller's organization",
    ),
    (
        "IndexStore",
        "the chain's public events and holdings, read by a contract the handler first loads in the caller's organization",
    ),
];

/// Handler calls of unscoped methods, with the reason.
const ALLOWED_CALLS: &[(&str, &str)] = &[(
    "system_index_state",
    "the chain-wide indexer cursor (a block number), no tenant data",
)];

#[test]
fn handlers_reach_only_methods_scoped_to_the_callers_organization() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let state = read(&root.join("src/state.rs"));
    let ports: Vec<String> = state
        .split("Arc<dyn ")
        .skip(1)
        .map(|rest| {
            let name = rest.split(['>', ' ']).next().unwrap();
            name.rsplit("::").next().unwrap().to_owned()
        })
        // `dyn Fn()` is the metrics renderer, not a port.
        .filter(|p| !p.starts_with("Fn(") && !PLATFORM_PORTS.iter().any(|(q, _)| q == p))
        .collect();
    assert!(ports.len() >= 10, "{ports:?}");

    let domain: String = rust_files(&root.join("../domain/src"))
        .iter()
        .map(|p| read(p))
        .collect::<Vec<_>>()
        .join("\n");
    let jobs = read(&root.join("../jobs/src/lib.rs")) + &read(&root.join("../domain/src/jobs.rs"));
    let mut unscoped = Vec::new();
    for port in &ports {
        let source = if domain.contains(&format!("pub trait {port}")) {
            &domain
        } else {
            &jobs
        };
        let start = source
            .find(&format!("pub trait {port}"))
            .unwrap_or_else(|| panic!("trait {port} not found"));
        let body = &source[start..];
        let body = &body[..body.find("\n}\n").unwrap()];
        for signature in body.split("async fn ").skip(1) {
            let name = signature.split('(').next().unwrap().trim();
            let params: String = signature
                .split_once('(')
                .unwrap()
                .1
                .split(')')
                .next()
                .unwrap()
                .split_whitespace()
                .collect();
            let scoped = params.starts_with("&self,org:OrgId")
                || params.starts_with("&self,org:crate::OrgId");
            let named = name.starts_with("system_") || name.starts_with("auth_");
            if !scoped && !named {
                unscoped.push(format!("{port}::{name}({params})"));
            }
        }
    }
    assert!(
        unscoped.is_empty(),
        "request-path methods must take `org: OrgId` first, or be named system_/auth_: {unscoped:#?}"
    );

    let mut calls = Vec::new();
    for file in rust_files(&root.join("src")) {
        let text = read(&file);
        let name = file.strip_prefix(&root).unwrap().display().to_string();
        let auth_path = name == "src/auth.rs"
            || name == "src/access_token.rs"
            || name == "src/routes/sessions.rs";
        // Authentication looks keys up (`system_find_by_digest`) and starts
        // signing keys (`system_rotate_signing_key`) before any organization.
        for (prefix, allowed_here) in [(".system_", auth_path), (".auth_", auth_path)] {
            for call in text.split(prefix).skip(1) {
                let method = format!(
                    "{}{}",
                    &prefix[1..],
                    call.split(['(', '\n']).next().unwrap()
                );
                if !allowed_here && !ALLOWED_CALLS.iter().any(|(m, _)| *m == method) {
                    calls.push(format!("{name}: {method}"));
                }
            }
        }
    }
    assert!(
        calls.is_empty(),
        "handlers must not reach system or auth methods: {calls:#?}"
    );
}
