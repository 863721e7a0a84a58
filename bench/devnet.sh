#!/usr/bin/env bash
# Devnet throughput in-process with persistence on (see docs/benchmarks.md).
# Usage: bench/devnet.sh [transactions per kind, default 10000]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-node-deps.sh
node bench/devnet/compile.js
git diff --quiet -- bench/devnet/BenchToken.bin || echo "note: BenchToken.bin changed on recompilation" >&2
cargo run -q --release -p rwa-chain --example devnet_bench -- "${1:-10000}"
