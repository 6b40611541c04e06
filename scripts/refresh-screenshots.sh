#!/usr/bin/env bash
# Refreshes the documentation's console screenshots (docs/screenshots/*.png) on purpose.
# A normal test run writes them to a temporary directory and never touches tracked files;
# this runs the console end-to-end test with BULWARK_SCREENSHOT_DIR=docs/screenshots, then
# shows what changed for review and commit. Needs what that test needs: root (network
# namespaces), HAProxy and Debian's Chromium (scripts/prereqs.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
node web/build-if-stale.ts
BULWARK_SCREENSHOT_DIR=docs/screenshots vitest run test/e2e/console.test.ts
git status --short -- docs/screenshots
