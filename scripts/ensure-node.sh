#!/usr/bin/env bash
# Makes sure Node.js 20+ and npm are there for the conformance suite
# (internal/conformance): the machine image has them; elsewhere Debian's
# packages are tried. Failure is not fatal here: outside CI that test then
# skips and says why, in CI it fails.
set -u
major() { node -e 'console.log(process.versions.node.split(".")[0])' 2>/dev/null || echo 0; }
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && [ "$(major)" -ge 20 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-node: Node.js 20+ and npm are needed for the conformance suite and cannot be installed here" >&2
  exit 0
fi
echo "ensure-node: installing Debian's nodejs and npm for the conformance suite" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; }; then
  echo "ensure-node: installing Node.js failed" >&2
elif [ "$(major)" -lt 20 ]; then
  echo "ensure-node: Debian's Node.js is $(node --version); the conformance suite needs 20 or later" >&2
fi
exit 0
