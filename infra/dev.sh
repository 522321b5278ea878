#!/usr/bin/env bash
# The whole stack on loopback: AWS emulator, resources from template.yaml, the functions behind
# cargo lambda's Lambda APIs, and a gateway that routes like API Gateway. Ctrl-C stops all of it.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${AWS_PORT:=4566}" "${LAMBDA_PORT:=9000}" "${API_PORT:=3000}" "${PROVIDER_PORT:=8085}" "${CALDAV_PORT:=5232}"
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
for port in "$AWS_PORT" "$LAMBDA_PORT" "$API_PORT" "$PROVIDER_PORT" "$CALDAV_PORT"; do
  if port_busy "$port"; then
    echo "Port $port on 127.0.0.1 is in use; set AWS_PORT / LAMBDA_PORT / API_PORT / PROVIDER_PORT / CALDAV_PORT." >&2
    exit 1
  fi
done

echo "Building the functions and the local tools (first time: a few minutes)..."
cargo build --workspace --bins
: "${FUNCTIONS:?the Makefile names the functions}"

echo "Starting the AWS emulator (DynamoDB, KMS, SQS) on 127.0.0.1:$AWS_PORT"
python infra/aws_emulator.py -H 127.0.0.1 -p "$AWS_PORT" >"$STATE/aws.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do port_busy "$AWS_PORT" && break; sleep 0.1; done

echo "Starting the Google / Microsoft emulator on 127.0.0.1:$PROVIDER_PORT"
"$CARGO_TARGET_DIR/debug/provider-emulator" --listen "127.0.0.1:$PROVIDER_PORT" >"$STATE/providers.log" 2>&1 &
pids+=($!)

echo "Starting Radicale (CalDAV, the Apple stand-in) on 127.0.0.1:$CALDAV_PORT: user alice / alice-app-password"
# Every start is clean: moto and the provider emulator keep their data in memory, so Radicale's
# calendars go too (kept, they would hold events calsync no longer knows).
rm -rf "$STATE/radicale/collections"
mkdir -p "$STATE/radicale"
echo "alice:alice-app-password" >"$STATE/radicale/users"
cat >"$STATE/radicale/config" <<CONF
[server]
hosts = 127.0.0.1:$CALDAV_PORT
[auth]
type = htpasswd
htpasswd_filename = $PWD/$STATE/radicale/users
htpasswd_encryption = plain
delay = 0
[rights]
type = owner_only
[storage]
filesystem_folder = $PWD/$STATE/radicale/collections
CONF
radicale --config "$STATE/radicale/config" >"$STATE/radicale.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do port_busy "$CALDAV_PORT" && port_busy "$PROVIDER_PORT" && break; sleep 0.1; done
curl -s -o /dev/null -u alice:alice-app-password -X MKCALENDAR "http://127.0.0.1:$CALDAV_PORT/alice/family/" \
  --data '<?xml version="1.0"?><C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><D:displayname>Family</D:displayname></D:prop></D:set></C:mkcalendar>' || true

echo "Creating tables, indexes, queues and keys from template.yaml"
PROVIDERS="http://127.0.0.1:$PROVIDER_PORT"
{
  "$CARGO_TARGET_DIR/debug/provision" --endpoint "http://127.0.0.1:$AWS_PORT" --template template.yaml \
    --set "OAUTH_CALLBACK_BASE=http://127.0.0.1:$API_PORT" \
    --set "APP_REDIRECT_URL=http://127.0.0.1:$API_PORT/connected" \
    --set "GOOGLE_CLIENT_ID=calsync-dev" --set "GOOGLE_CLIENT_SECRET=calsync-dev-secret" \
    --set "GOOGLE_AUTH_URL=$PROVIDERS/google/o/oauth2/v2/auth" --set "GOOGLE_TOKEN_URL=$PROVIDERS/google/token" \
    --set "GOOGLE_REVOKE_URL=$PROVIDERS/google/revoke" --set "GOOGLE_API_BASE=$PROVIDERS/google/calendar/v3" \
    --set "MICROSOFT_CLIENT_ID=calsync-dev" --set "MICROSOFT_CLIENT_SECRET=calsync-dev-secret" \
    --set "MICROSOFT_AUTH_URL=$PROVIDERS/microsoft/common/oauth2/v2.0/authorize" \
    --set "MICROSOFT_TOKEN_URL=$PROVIDERS/microsoft/common/oauth2/v2.0/token" \
    --set "MICROSOFT_API_BASE=$PROVIDERS/microsoft/v1.0" \
    --set "CALDAV_DEFAULT_SERVER=http://127.0.0.1:$CALDAV_PORT" --set "CALDAV_ALLOW_HTTP_LOOPBACK=127.0.0.1:$CALDAV_PORT" \
    --set "MAIL_OUTBOX_DIR=$PWD/.dev/outbox" --set "PASSWORD_RESET_URL=http://127.0.0.1:$API_PORT/reset-password" \
    --set "PUSH_NOTIFICATION_BASE=http://127.0.0.1:$API_PORT" --set "WEBHOOK_ALLOW_HTTP_LOOPBACK=127.0.0.1:$API_PORT"

  echo "AWS_ENDPOINT_URL=http://127.0.0.1:$AWS_PORT"
  echo "AWS_REGION=us-east-1"
  echo "AWS_ACCESS_KEY_ID=test"
  echo "AWS_SECRET_ACCESS_KEY=test"
} >"$STATE/functions.env"

echo "Serving the functions behind cargo lambda's Lambda APIs on 127.0.0.1:$LAMBDA_PORT (log: $STATE/functions.log)"
# cargo lambda serves the Invoke and Runtime APIs only; the functions run under supervise() below,
# because cargo lambda does not start a function again once its process has exited.
cargo lambda watch --only-lambda-apis -A 127.0.0.1 -P "$LAMBDA_PORT" >"$STATE/lambda-apis.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do port_busy "$LAMBDA_PORT" && break; sleep 0.2; done

# Runs one function as Lambda would, against its own Runtime API path, and starts it again when
# it exits (after a second, so a function that cannot start does not spin) or when its binary
# changes (so `cargo build` in another terminal reloads it).
supervise() {
  local name=$1 binary="$CARGO_TARGET_DIR/debug/$1" child="" built=""
  trap '[[ -n "$child" ]] && kill "$child" 2>/dev/null; exit 0' TERM INT
  while true; do
    if [[ -z "$child" ]] || ! kill -0 "$child" 2>/dev/null; then
      if [[ -n "$child" ]]; then
        wait "$child" 2>/dev/null && status=0 || status=$?
        echo "[dev] $name exited (status $status); starting it again" >&2
        sleep 1
      fi
      built=$(stat -c %Y "$binary")
      (
        while IFS= read -r line; do export "$line"; done <"$STATE/functions.env"
        export AWS_LAMBDA_FUNCTION_NAME="$name" AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$LAMBDA_PORT/.rt/$name" \
          AWS_LAMBDA_FUNCTION_VERSION='$LATEST' AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256
        exec "$binary"
      ) &
      child=$!
    elif [[ "$(stat -c %Y "$binary" 2>/dev/null)" != "$built" ]]; then
      echo "[dev] $name was rebuilt; restarting it" >&2
      kill "$child" 2>/dev/null || true
      wait "$child" 2>/dev/null || true
      child=""
      continue
    fi
    sleep 1
  done
}
: >"$STATE/functions.log"
for name in $FUNCTIONS; do
  supervise "$name" >>"$STATE/functions.log" 2>&1 &
  pids+=($!)
done

QUEUE_URL=$(sed -n 's/^SYNC_QUEUE_URL=//p' "$STATE/functions.env")
WEBHOOK_QUEUE_URL=$(sed -n 's/^WEBHOOK_QUEUE_URL=//p' "$STATE/functions.env")
echo "Playing EventBridge and the SQS event-source mappings (log: $STATE/driver.log)"
"$CARGO_TARGET_DIR/debug/driver" --endpoint "http://127.0.0.1:$AWS_PORT" --queue-url "$QUEUE_URL" \
  --webhook-queue-url "$WEBHOOK_QUEUE_URL" --lambda "http://127.0.0.1:$LAMBDA_PORT" >"$STATE/driver.log" 2>&1 &
pids+=($!)

"$CARGO_TARGET_DIR/debug/gateway" --listen "127.0.0.1:$API_PORT" --upstream "http://127.0.0.1:$LAMBDA_PORT" --template template.yaml --app-page \
  --webhook-sink "$STATE/webhooks" &
pids+=($!)

cat <<MSG

  calsync is running.  Base URL: http://127.0.0.1:$API_PORT/v1
  Load sample data:  make seed      (then log in as demo@calsync.dev / demo-password)
  Emulated Google / Microsoft: http://127.0.0.1:$PROVIDER_PORT (accounts alice@gmail.test, bob@outlook.test)
  CalDAV (Radicale):  http://127.0.0.1:$CALDAV_PORT  (alice / alice-app-password)
  Mail (password resets): .dev/outbox/*.eml   (SES in AWS; nothing leaves this machine here)
  Webhooks: register http://127.0.0.1:$API_PORT/dev/webhook-sink; deliveries land in .dev/webhooks/*.json
  Push: the emulated providers notify http://127.0.0.1:$API_PORT/push/{google,microsoft}

  Walkthrough:       README.md
  Press Ctrl-C to stop everything.

MSG
wait -n "${pids[@]}" || true
