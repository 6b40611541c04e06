#!/usr/bin/env bash
# schemathesis (PyPI) for the API fuzz test (test/integration/schemathesis.test.ts), in its own
# virtualenv outside the repo so neither the system Python nor the checkout is touched. Pinned and
# idempotent: a venv that finished installing this version is left as it is (no network).
# The CLI is then $venv/bin/st (the test finds it there, or at $BULWARK_SCHEMATHESIS).
set -euo pipefail
version=4.32.5
venv=${BULWARK_SCHEMATHESIS_VENV:-/var/cache/bulwark/schemathesis-$version}
done_marker="$venv/.installed"
[ -f "$done_marker" ] && [ -x "$venv/bin/st" ] && exit 0
python=$(command -v python3 || true)
if [ -z "$python" ] || ! "$python" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "schemathesis: needs Python >= 3.10 with venv and ensurepip; on Debian: sudo apt-get install -y python3-venv" >&2
  exit 1
fi
echo "schemathesis: installing $version into $venv" >&2
# A half-finished venv (interrupted pip) is rebuilt from scratch: only the marker says it is whole.
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
"$venv/bin/st" --version >&2
touch "$done_marker"
