#!/usr/bin/env bash
# Installs Mesa's lavapipe (software Vulkan) when no Vulkan driver is installed, so that Dawn finds an adapter and
# the WebGPU tests run. Bookworm's own Mesa 22 is too old for Dawn; bookworm-backports has Mesa 25. Needs root and
# the Debian mirror; a machine that already has a driver (e.g. NVIDIA's) is left alone.
set -euo pipefail
if compgen -G '/usr/share/vulkan/icd.d/*.json' >/dev/null || compgen -G '/etc/vulkan/icd.d/*.json' >/dev/null; then
  echo "ensure-vulkan: a Vulkan driver is installed ($(ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>/dev/null | grep json | tr '\n' ' '))"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "ensure-vulkan: no Vulkan driver and no root apt-get here: the WebGPU tests will skip" >&2
  exit 0
fi
. /etc/os-release
echo "deb http://deb.debian.org/debian ${VERSION_CODENAME}-backports main" > "/etc/apt/sources.list.d/${VERSION_CODENAME}-backports.list"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t "${VERSION_CODENAME}-backports" mesa-vulkan-drivers >/dev/null
echo "ensure-vulkan: installed $(dpkg-query -W -f='${Package} ${Version}' mesa-vulkan-drivers)"
