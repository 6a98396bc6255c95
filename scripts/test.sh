#!/usr/bin/env bash
# The test command (README): builds, checks the layering and formatting, then runs every test file under
# dist/test with node's test runner. A missing peer is a failure with a message saying what to install,
# never a silent skip (test/peers.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc -b
npx tsc -p tsconfig.protocol.json
npx biome check src test bench
mapfile -t files < <(find dist/test -name '*.test.js' | sort)
exec node --enable-source-maps --test --test-concurrency=2 --test-timeout=600000 "$@" "${files[@]}"
