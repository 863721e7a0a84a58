#!/usr/bin/env bash
# Gas of each contract operation, from receipts of real transactions on the
# devnet (persistence on). Prints a Markdown table; see docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run -q --release -p rwa-chain --example contract_gas
