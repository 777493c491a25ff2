#!/usr/bin/env bash
# Installs Debian's Chromium for the sandbox page test when it is missing.
# Failure is not fatal: that one test then skips and says why.
set -u
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: cannot install Chromium here (not root or no apt-get); the browser test will skip" >&2
  exit 0
fi
echo "ensure-chromium: installing Debian's chromium package for the browser test" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends chromium >/dev/null; }; then
  echo "ensure-chromium: installing Chromium failed; the browser test will skip" >&2
fi
exit 0
