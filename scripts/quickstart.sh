#!/bin/sh
# One command from a fresh Debian 12 (as root) to a running quickstart pipeline:
# installs the dependencies, builds scalebus and runs examples/quickstart.yaml until Ctrl-C.
# Another pipeline file first runs that one instead:
#   sh scripts/quickstart.sh examples/quickstart-router.yaml [--log-level debug]
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build
FILE=examples/quickstart.yaml
case "${1:-}" in
  *.yaml | *.yml) FILE=$1; shift ;;
esac
exec build/scalebus run "$FILE" "$@"
