#!/usr/bin/env bash
# Installs Debian's chromium when it is missing, so that the report tests (tests/report/) render lopper's HTML report
# in a real headless browser through playwright-core, which is pointed at /usr/bin/chromium and never downloads a
# browser of its own. Needs root and the Debian mirror; without them the report tests skip with a message.
set -euo pipefail
if command -v chromium >/dev/null; then
  echo "ensure-chromium: $(chromium --version 2>/dev/null || echo chromium) is installed"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "ensure-chromium: no chromium and no root apt-get here: the report tests will skip" >&2
  exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
echo "ensure-chromium: installed $(dpkg-query -W -f='${Package} ${Version}' chromium)"
