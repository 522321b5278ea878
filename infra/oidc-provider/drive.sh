#!/usr/bin/env bash
# Self-check for server.mjs: starts it on a free 127.0.0.1 port and drives a
# complete authorization-code + PKCE + refresh-rotation flow headlessly with
# curl (cookie jar, no automatic redirects). Prints every step; exits 0 only if
# everything behaved as expected. Needs: bash, curl, openssl, node, and
# `npm ci` (or `npm install`) run in this folder first.
#
# Usage: bash drive.sh        (VERBOSE=1 also dumps response headers/bodies)
set -uo pipefail

DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REDIRECT_URI="http://127.0.0.1:9/cb"
CLIENT_ID="calsync"
CLIENT_SECRET="calsync-secret"
ACCESS_TOKEN_TTL=600        # non-default, to check the env var is honoured
LOGIN_NAME="alice"
VERBOSE="${VERBOSE:-0}"

WORK="$(mktemp -d)"
JAR="$WORK/cookies.txt"
HDR="$WORK/headers"
BODY="$WORK/body"
SERVER_LOG="$WORK/server.stderr"
SERVER_PID=""
FAILURES=0

step() { printf '\n== %s\n' "$*"; }
ok()   { printf '   ok: %s\n' "$*"; }
bad()  { printf '   FAIL: %s\n' "$*"; FAILURES=$((FAILURES + 1)); }
die()  { printf '   FATAL: %s\n' "$*"; exit 1; }

cleanup() {
  local rc=$?
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  fi
  if [[ ($rc -ne 0 || "$VERBOSE" == 1) && -s "$SERVER_LOG" ]]; then
    echo "--- server stderr ---"; cat "$SERVER_LOG"
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

command -v node >/dev/null || die "node not found"
command -v curl >/dev/null || die "curl not found"
command -v openssl >/dev/null || die "openssl not found"
[[ -d "$DIR/node_modules/oidc-provider" ]] || die "run 'npm ci' in $DIR first"

# port_in_use PORT -> 0 if something accepts connections on 127.0.0.1:PORT
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_server PORT: runs server.mjs as a coprocess (its stdin is a pipe held by
# this shell, so it also dies with us) and waits for its "ready <issuer>" line.
start_server() {
  local port=$1 line=""
  : >"$SERVER_LOG"
  coproc SRV { PORT="$port" REDIRECT_URI="$REDIRECT_URI" ACCESS_TOKEN_TTL="$ACCESS_TOKEN_TTL" \
               exec node "$DIR/server.mjs" 2>>"$SERVER_LOG"; }
  SERVER_PID=$SRV_PID
  SRV_OUT=${SRV[0]}
  SRV_IN=${SRV[1]}
  if ! read -r -t 20 line <&"$SRV_OUT"; then
    return 1
  fi
  READY_LINE=$line
  return 0
}

# http METHOD URL [curl args...]: one request, no redirects followed, cookie
# jar read and written. Sets STATUS and LOCATION (absolute; relative Location
# headers are resolved against the issuer), body in $BODY.
http() {
  local method=$1 url=$2; shift 2
  STATUS=$(curl -sS -X "$method" -o "$BODY" -D "$HDR" -w '%{http_code}' \
                -b "$JAR" -c "$JAR" "$@" "$url") || STATUS="curl-error"
  LOCATION=$(grep -i '^location:' "$HDR" | head -n1 | sed 's/^[Ll]ocation: *//' | tr -d '\r')
  if [[ "$LOCATION" == /* ]]; then LOCATION="$ISSUER$LOCATION"; fi
  printf '   %s %s -> %s%s\n' "$method" "${url%%\?*}" "$STATUS" "${LOCATION:+  Location: $LOCATION}"
  if [[ "$VERBOSE" == 1 ]]; then sed 's/^/     < /' "$HDR"; head -c 2000 "$BODY" | sed 's/^/     | /'; echo; fi
}

# json_str KEY / json_num KEY: crude extraction from $BODY (flat JSON only).
json_str() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" "$BODY"; }
json_num() { sed -n "s/.*\"$1\":\\([0-9][0-9]*\\).*/\\1/p" "$BODY"; }
# query_param NAME URL
query_param() { printf '%s' "$2" | sed -n "s/.*[?&]$1=\\([^&#]*\\).*/\\1/p"; }

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

# ---------------------------------------------------------------------------
step "start server.mjs"
STARTED=0
for _ in 1 2 3 4 5 6 7 8 9 10; do
  PORT=$((20000 + RANDOM % 40000))
  port_in_use "$PORT" && continue
  if start_server "$PORT"; then STARTED=1; break; fi
  wait "$SERVER_PID" 2>/dev/null; SERVER_PID=""
done
[[ $STARTED == 1 ]] || die "server did not become ready"
ISSUER="http://127.0.0.1:$PORT"
[[ "$READY_LINE" == "ready $ISSUER" ]] && ok "stdout: '$READY_LINE'" || bad "unexpected ready line '$READY_LINE'"

step "discovery"
http GET "$ISSUER/.well-known/openid-configuration"
[[ "$STATUS" == 200 ]] || die "discovery failed"
for kv in "issuer=$ISSUER" "authorization_endpoint=$ISSUER/auth" "token_endpoint=$ISSUER/token" \
          "revocation_endpoint=$ISSUER/token/revocation" "introspection_endpoint=$ISSUER/token/introspection" \
          "userinfo_endpoint=$ISSUER/me"; do
  [[ "$(json_str "${kv%%=*}")" == "${kv#*=}" ]] && ok "$kv" || bad "expected $kv, got '$(json_str "${kv%%=*}")'"
done
grep -q '"code_challenge_methods_supported":\["S256"\]' "$BODY" && ok 'code_challenge_methods_supported=["S256"]' || bad "code_challenge_methods_supported"

# ---------------------------------------------------------------------------
step "PKCE: code_verifier and S256 code_challenge (openssl)"
CODE_VERIFIER=$(openssl rand 48 | b64url)              # 64 chars of [A-Za-z0-9_-]
CODE_CHALLENGE=$(printf '%s' "$CODE_VERIFIER" | openssl dgst -sha256 -binary | b64url)
STATE=$(openssl rand -hex 12)
echo "   code_verifier=$CODE_VERIFIER"
echo "   code_challenge=$CODE_CHALLENGE state=$STATE"

authorize() { # extra curl args appended (e.g. PKCE params)
  http GET "$ISSUER/auth" -G \
    --data-urlencode "client_id=$CLIENT_ID" \
    --data-urlencode "response_type=code" \
    --data-urlencode "redirect_uri=$REDIRECT_URI" \
    --data-urlencode "scope=openid offline_access email" \
    --data-urlencode "prompt=consent" \
    --data-urlencode "state=$STATE" \
    "$@"
}

step "authorization request (expect 303 to /interaction/<uid>)"
authorize --data-urlencode "code_challenge=$CODE_CHALLENGE" --data-urlencode "code_challenge_method=S256"
[[ "$STATUS" == 303 && "$LOCATION" == "$ISSUER/interaction/"* ]] || die "expected 303 to the login interaction"
LOGIN_URL=$LOCATION
ok "login interaction: $LOGIN_URL"

step "login page (GET interaction URL)"
http GET "$LOGIN_URL"
[[ "$STATUS" == 200 ]] && grep -q 'name="prompt" value="login"' "$BODY" && ok "login form rendered" || die "no login form"

step "submit login form (POST prompt=login, login=$LOGIN_NAME, password=...)"
http POST "$LOGIN_URL" --data-urlencode "prompt=login" --data-urlencode "login=$LOGIN_NAME" --data-urlencode "password=anything"
[[ "$STATUS" == 303 && "$LOCATION" == "$ISSUER/auth/"* ]] || die "expected 303 to /auth/<uid>"
ok "resume URL: $LOCATION"

step "resume authorization (GET /auth/<uid>, expect 303 to the consent interaction)"
http GET "$LOCATION"
[[ "$STATUS" == 303 && "$LOCATION" == "$ISSUER/interaction/"* ]] || die "expected 303 to the consent interaction"
CONSENT_URL=$LOCATION
[[ "$CONSENT_URL" != "$LOGIN_URL" ]] && ok "consent interaction (new uid): $CONSENT_URL" || ok "consent interaction: $CONSENT_URL"

step "consent page (GET interaction URL)"
http GET "$CONSENT_URL"
[[ "$STATUS" == 200 ]] && grep -q 'name="prompt" value="consent"' "$BODY" && ok "consent form rendered" || die "no consent form"

step "submit consent form (POST prompt=consent)"
http POST "$CONSENT_URL" --data-urlencode "prompt=consent"
[[ "$STATUS" == 303 && "$LOCATION" == "$ISSUER/auth/"* ]] || die "expected 303 to /auth/<uid>"

step "resume authorization (expect 303 to REDIRECT_URI with code and state; not followed)"
http GET "$LOCATION"
[[ "$STATUS" == 303 && "$LOCATION" == "$REDIRECT_URI?"* ]] || die "expected 303 to $REDIRECT_URI"
CODE=$(query_param code "$LOCATION")
GOT_STATE=$(query_param state "$LOCATION")
GOT_ISS=$(query_param iss "$LOCATION")
[[ -n "$CODE" ]] && ok "code=$CODE" || bad "no code"
[[ "$GOT_STATE" == "$STATE" ]] && ok "state matches" || bad "state mismatch: '$GOT_STATE'"
[[ "$GOT_ISS" == "http%3A%2F%2F127.0.0.1%3A$PORT" ]] && ok "iss=$GOT_ISS (RFC 9207)" || bad "unexpected iss '$GOT_ISS'"

# ---------------------------------------------------------------------------
step "token request: authorization_code + code_verifier (client_secret_basic)"
http POST "$ISSUER/token" -u "$CLIENT_ID:$CLIENT_SECRET" \
  --data-urlencode "grant_type=authorization_code" --data-urlencode "code=$CODE" \
  --data-urlencode "redirect_uri=$REDIRECT_URI" --data-urlencode "code_verifier=$CODE_VERIFIER"
[[ "$STATUS" == 200 ]] || die "token request failed: $(cat "$BODY")"
AT1=$(json_str access_token); RT1=$(json_str refresh_token)
[[ -n "$AT1" ]] && ok "access_token=$AT1" || bad "no access_token"
[[ -n "$RT1" ]] && ok "refresh_token=$RT1" || bad "no refresh_token"
[[ "$(json_num expires_in)" == "$ACCESS_TOKEN_TTL" ]] && ok "expires_in=$ACCESS_TOKEN_TTL" || bad "expires_in='$(json_num expires_in)'"
[[ "$(json_str token_type)" == "Bearer" ]] && ok "token_type=Bearer" || bad "token_type='$(json_str token_type)'"
[[ -n "$(json_str id_token)" ]] && ok "id_token present" || bad "no id_token"
ok "scope=$(json_str scope)"

step "userinfo with the access token"
http GET "$ISSUER/me" -H "Authorization: Bearer $AT1"
[[ "$STATUS" == 200 && "$(json_str sub)" == "$LOGIN_NAME" ]] && ok "$(cat "$BODY")" || bad "userinfo: $(cat "$BODY")"

step "refresh (client_secret_post): expect a NEW refresh token"
http POST "$ISSUER/token" \
  --data-urlencode "grant_type=refresh_token" --data-urlencode "refresh_token=$RT1" \
  --data-urlencode "client_id=$CLIENT_ID" --data-urlencode "client_secret=$CLIENT_SECRET"
[[ "$STATUS" == 200 ]] || die "refresh failed: $(cat "$BODY")"
AT2=$(json_str access_token); RT2=$(json_str refresh_token)
[[ -n "$AT2" && "$AT2" != "$AT1" ]] && ok "new access_token=$AT2" || bad "no new access_token"
[[ -n "$RT2" && "$RT2" != "$RT1" ]] && ok "new refresh_token=$RT2 (rotated)" || bad "refresh token was not rotated"
[[ "$(json_num expires_in)" == "$ACCESS_TOKEN_TTL" ]] && ok "expires_in=$ACCESS_TOKEN_TTL" || bad "expires_in='$(json_num expires_in)'"

step "introspection: the new access token is active"
http POST "$ISSUER/token/introspection" -u "$CLIENT_ID:$CLIENT_SECRET" --data-urlencode "token=$AT2"
[[ "$STATUS" == 200 ]] && grep -q '"active":true' "$BODY" && ok "active:true" || bad "introspection: $(cat "$BODY")"

step "reuse the OLD refresh token: expect 400 invalid_grant"
http POST "$ISSUER/token" -u "$CLIENT_ID:$CLIENT_SECRET" \
  --data-urlencode "grant_type=refresh_token" --data-urlencode "refresh_token=$RT1"
echo "   body: $(cat "$BODY")"
[[ "$STATUS" == 400 ]] && ok "status 400" || bad "status $STATUS"
[[ "$(cat "$BODY")" == '{"error":"invalid_grant","error_description":"grant request is invalid"}' ]] \
  && ok "exact invalid_grant body" || bad "unexpected body"

step "the rotated (new) refresh token is now dead too: reuse revoked the whole grant"
http POST "$ISSUER/token" -u "$CLIENT_ID:$CLIENT_SECRET" \
  --data-urlencode "grant_type=refresh_token" --data-urlencode "refresh_token=$RT2"
echo "   body: $(cat "$BODY")"
[[ "$STATUS" == 400 ]] && grep -q '"error":"invalid_grant"' "$BODY" && ok "invalid_grant" || bad "status $STATUS"

step "... and so are its access tokens"
http POST "$ISSUER/token/introspection" -u "$CLIENT_ID:$CLIENT_SECRET" --data-urlencode "token=$AT2"
[[ "$STATUS" == 200 ]] && grep -q '"active":false' "$BODY" && ok "introspection: $(cat "$BODY")" || bad "introspection: $(cat "$BODY")"

# ---------------------------------------------------------------------------
step "second authorization, same cookie jar (session exists): consent only"
CODE_VERIFIER=$(openssl rand 48 | b64url)
CODE_CHALLENGE=$(printf '%s' "$CODE_VERIFIER" | openssl dgst -sha256 -binary | b64url)
authorize --data-urlencode "code_challenge=$CODE_CHALLENGE" --data-urlencode "code_challenge_method=S256"
[[ "$STATUS" == 303 && "$LOCATION" == "$ISSUER/interaction/"* ]] || die "expected 303 to an interaction"
CONSENT_URL=$LOCATION
http GET "$CONSENT_URL"
grep -q 'name="prompt" value="consent"' "$BODY" && ok "went straight to consent (no login)" || bad "expected the consent form"
http POST "$CONSENT_URL" --data-urlencode "prompt=consent"
[[ "$STATUS" == 303 && "$LOCATION" == "$ISSUER/auth/"* ]] || die "expected 303 to /auth/<uid>"
http GET "$LOCATION"
[[ "$STATUS" == 303 && "$LOCATION" == "$REDIRECT_URI?"* ]] || die "expected 303 to $REDIRECT_URI"
CODE=$(query_param code "$LOCATION")
http POST "$ISSUER/token" -u "$CLIENT_ID:$CLIENT_SECRET" \
  --data-urlencode "grant_type=authorization_code" --data-urlencode "code=$CODE" \
  --data-urlencode "redirect_uri=$REDIRECT_URI" --data-urlencode "code_verifier=$CODE_VERIFIER"
[[ "$STATUS" == 200 ]] || die "token request failed: $(cat "$BODY")"
AT3=$(json_str access_token); RT3=$(json_str refresh_token)
[[ -n "$AT3" && -n "$RT3" ]] && ok "new grant: access_token=$AT3 refresh_token=$RT3" || bad "missing tokens"

step "revocation (RFC 7009) of the refresh token"
http POST "$ISSUER/token/revocation" -u "$CLIENT_ID:$CLIENT_SECRET" \
  --data-urlencode "token=$RT3" --data-urlencode "token_type_hint=refresh_token"
[[ "$STATUS" == 200 ]] && ok "200, body: '$(cat "$BODY")'" || bad "revocation status $STATUS: $(cat "$BODY")"
http POST "$ISSUER/token" -u "$CLIENT_ID:$CLIENT_SECRET" \
  --data-urlencode "grant_type=refresh_token" --data-urlencode "refresh_token=$RT3"
[[ "$STATUS" == 400 ]] && grep -q '"error":"invalid_grant"' "$BODY" && ok "revoked refresh token -> $(cat "$BODY")" || bad "status $STATUS: $(cat "$BODY")"
http POST "$ISSUER/token/introspection" -u "$CLIENT_ID:$CLIENT_SECRET" --data-urlencode "token=$AT3"
[[ "$STATUS" == 200 ]] && grep -q '"active":false' "$BODY" && ok "its access token too: $(cat "$BODY")" || bad "introspection: $(cat "$BODY")"

# ---------------------------------------------------------------------------
step "authorization request WITHOUT code_challenge: expect error redirect"
authorize
[[ "$STATUS" == 303 && "$LOCATION" == "$REDIRECT_URI?"* ]] || bad "expected 303 to $REDIRECT_URI"
[[ "$(query_param error "$LOCATION")" == invalid_request ]] && ok "error=invalid_request" || bad "no error=invalid_request"
echo "   error_description=$(query_param error_description "$LOCATION")"
[[ -z "$(query_param code "$LOCATION")" ]] && ok "no code issued" || bad "a code was issued"

step "authorization request with code_challenge_method=plain: expect error redirect"
authorize --data-urlencode "code_challenge=$CODE_VERIFIER" --data-urlencode "code_challenge_method=plain"
[[ "$STATUS" == 303 && "$(query_param error "$LOCATION")" == invalid_request ]] && ok "error=invalid_request" || bad "plain was not rejected"
echo "   error_description=$(query_param error_description "$LOCATION")"

# ---------------------------------------------------------------------------
step "closing the server's stdin makes it exit"
eval "exec ${SRV_IN}>&-"
for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$SERVER_PID" 2>/dev/null; then
  bad "server still running 5s after stdin closed"
else
  wait "$SERVER_PID"; rc=$?
  [[ $rc == 0 ]] && ok "exited with status 0" || bad "exit status $rc"
  SERVER_PID=""
fi
port_in_use "$PORT" && bad "port $PORT still open" || ok "port $PORT closed"

step "SIGTERM makes it exit"
for _ in 1 2 3 4 5 6 7 8 9 10; do
  PORT=$((20000 + RANDOM % 40000)); ISSUER="http://127.0.0.1:$PORT"
  port_in_use "$PORT" && continue
  if start_server "$PORT"; then break; fi
  wait "$SERVER_PID" 2>/dev/null; SERVER_PID=""
done
if [[ -n "$SERVER_PID" ]]; then
  kill -TERM "$SERVER_PID"
  for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$SERVER_PID" 2>/dev/null; then bad "still running 5s after SIGTERM"
  else wait "$SERVER_PID"; rc=$?; [[ $rc == 0 ]] && ok "exited with status 0" || bad "exit status $rc"; SERVER_PID=""; fi
else
  bad "second server did not start"
fi

echo
if [[ $FAILURES -eq 0 ]]; then
  echo "ALL CHECKS PASSED"
  exit 0
fi
echo "$FAILURES CHECK(S) FAILED"
exit 1
