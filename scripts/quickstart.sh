#!/bin/sh
# One command from a fresh Debian 12 (as root) to a running quickstart pipeline:
# installs the dependencies, builds scalebus and runs examples/quickstart.yaml until Ctrl-C.
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build
exec build/scalebus run examples/quickstart.yaml "$@"
