#!/usr/bin/env bash
# Installs the pinned node tools (package.json / package-lock.json): solc and
# OpenZeppelin for contracts/, anvil for the JSON-RPC chain tests. Installs
# Node.js and npm from Debian packages when missing. Idempotent and quiet when
# node_modules already matches the lock file.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

if ! command -v npm >/dev/null 2>&1; then
  echo "installing Node.js and npm…"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi

anvil="node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
stamp="node_modules/.rwa-lock.sha256"
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ -x "$anvil" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
# `npm install`, not `npm ci`: npm 11 writes a lock that records only this
# platform's anvil binary and then refuses it in `npm ci`; `install` follows
# the same pinned versions without that check. `--no-save` keeps the committed
# lock as it is (npm would otherwise rewrite it for the platform at hand).
npm install --no-save --no-audit --no-fund --loglevel=error
echo "$want" > "$stamp"
