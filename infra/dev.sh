#!/usr/bin/env bash
# The whole stack on loopback: AWS emulator, resources from template.yaml, the functions under
# cargo lambda watch, and a gateway that routes like API Gateway. Ctrl-C stops all of it.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${AWS_PORT:=4566}" "${LAMBDA_PORT:=9000}" "${API_PORT:=3000}"
STATE=.dev
mkdir -p "$STATE"
pids=()
stop() {
  trap - EXIT INT TERM
  echo; echo "Stopping the local stack..."
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$AWS_PORT" "$LAMBDA_PORT" "$API_PORT"; do
  if port_busy "$port"; then
    echo "Port $port on 127.0.0.1 is in use; set AWS_PORT / LAMBDA_PORT / API_PORT." >&2
    exit 1
  fi
done

echo "Building the functions and the local tools (first time: a few minutes)..."
cargo build --quiet --workspace --bins

echo "Starting the AWS emulator (DynamoDB, KMS, SQS) on 127.0.0.1:$AWS_PORT"
moto_server -H 127.0.0.1 -p "$AWS_PORT" >"$STATE/aws.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do port_busy "$AWS_PORT" && break; sleep 0.1; done

echo "Creating tables, indexes, queues and keys from template.yaml"
{
  "$CARGO_TARGET_DIR/debug/provision" --endpoint "http://127.0.0.1:$AWS_PORT" --template template.yaml
  echo "AWS_ENDPOINT_URL=http://127.0.0.1:$AWS_PORT"
  echo "AWS_REGION=us-east-1"
  echo "AWS_ACCESS_KEY_ID=test"
  echo "AWS_SECRET_ACCESS_KEY=test"
} >"$STATE/functions.env"

echo "Serving the functions with cargo lambda watch on 127.0.0.1:$LAMBDA_PORT (log: $STATE/functions.log)"
cargo lambda watch -A 127.0.0.1 -P "$LAMBDA_PORT" --env-file "$STATE/functions.env" >"$STATE/functions.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do port_busy "$LAMBDA_PORT" && break; sleep 0.2; done

"$CARGO_TARGET_DIR/debug/gateway" --listen "127.0.0.1:$API_PORT" --upstream "http://127.0.0.1:$LAMBDA_PORT" --template template.yaml &
pids+=($!)

cat <<MSG

  calsync is running.  Base URL: http://127.0.0.1:$API_PORT/v1
  Load sample data:  make seed      (then log in as demo@calsync.dev / demo-password)
  Walkthrough:       README.md
  Press Ctrl-C to stop everything.

MSG
wait -n "${pids[@]}" || true
