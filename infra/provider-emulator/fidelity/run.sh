#!/usr/bin/env bash
# Fidelity checks of the provider emulator against Google's and Microsoft's own artefacts:
#   infra/provider-emulator/fidelity/run.sh [PYTHON]
# PYTHON (default python3) must have infra/requirements.txt installed (google-api-python-client,
# msgraph-sdk). Builds and starts $CARGO_TARGET_DIR/debug/provider-emulator on a free loopback port, runs
# check_google.py and check_graph.py against it, stops it. Exit code = number of failed checks.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python=${1:-python3}
# The clone's own build (the Makefile sets CARGO_TARGET_DIR to it); alone, cargo's default.
target=${CARGO_TARGET_DIR:-$here/../../../target}
bin=$target/debug/provider-emulator

# Built from this checkout every time (a no-op when up to date): the target directory may hold a
# binary built from another checkout or an older commit.
(cd "$here/../../.." && CARGO_TARGET_DIR=$target cargo build --quiet -p calsync-provider-emulator) || exit 2

log=$(mktemp)
"$bin" --listen 127.0.0.1:0 >"$log" 2>&1 &
pid=$!
cleanup() {
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rm -f "$log"
}
trap cleanup EXIT

url=
for _ in $(seq 1 100); do
    url=$(sed -n 's/^provider emulator: //p' "$log")
    [[ -n $url ]] && break
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "run.sh: the provider emulator exited:" >&2
        cat "$log" >&2
        exit 2
    fi
    sleep 0.1
done
if [[ -z $url ]]; then
    echo "run.sh: the provider emulator did not start within 10 s" >&2
    exit 2
fi

passed=0
failed=0
for check in check_google.py check_graph.py; do
    if "$python" "$here/$check" "$url"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "run.sh: $check failed" >&2
    fi
done
echo "provider emulator fidelity: $passed passed, $failed failed"
exit "$failed"
