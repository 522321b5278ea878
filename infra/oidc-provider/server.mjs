// OAuth 2.0 / OpenID Connect authorization server for calsync integration tests.
//
// Built on the `oidc-provider` npm package (see package.json for the pinned
// version). Everything is kept in memory; every start is a fresh server with a
// fresh signing key, fresh cookie keys and no sessions/tokens.
//
// Environment:
//   PORT              required  TCP port to listen on (127.0.0.1 only)
//   REDIRECT_URI      required  the client's only registered redirect URI
//   CLIENT_ID         optional  default "calsync"
//   CLIENT_SECRET     optional  default "calsync-secret"
//   ACCESS_TOKEN_TTL  optional  access token lifetime in seconds, default 3600
//
// Protocol with the parent process:
//   * stdout carries exactly one line, "ready <issuer>\n", once listening.
//     Everything else (oidc-provider notices, warnings, errors) goes to stderr.
//   * exits 0 on SIGTERM / SIGINT.
//   * exits 0 when stdin reaches EOF, so a test process that dies cannot leave
//     the server behind. Start it with a stdin PIPE and keep the write end
//     open for as long as the server is needed (a stdin of /dev/null means
//     the server exits right away).
//
// See FLOW.md for the HTTP sequence a test uses to drive a login headlessly.

import * as crypto from 'node:crypto';

import Provider from 'oidc-provider';

// oidc-provider prints its "NOTICE" lines with console.info (i.e. to stdout).
// stdout is reserved for the single "ready" line, so send all console output
// to stderr.
for (const level of ['log', 'info', 'debug']) {
  console[level] = (...args) => console.error(...args);
}

function fail(message) {
  process.stderr.write(`oidc-provider server: ${message}\n`);
  process.exit(2);
}

function required(name) {
  const value = process.env[name];
  if (value === undefined || value === '') fail(`environment variable ${name} is required`);
  return value;
}

function positiveInt(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^[0-9]+$/.test(raw) || Number(raw) <= 0) fail(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  return Number(raw);
}

const HOST = '127.0.0.1';
const PORT = positiveInt('PORT', undefined);
if (PORT === undefined) fail('environment variable PORT is required');
if (PORT > 65535) fail(`PORT out of range: ${PORT}`);
const REDIRECT_URI = required('REDIRECT_URI');
const CLIENT_ID = process.env.CLIENT_ID || 'calsync';
const CLIENT_SECRET = process.env.CLIENT_SECRET || 'calsync-secret';
const ACCESS_TOKEN_TTL = positiveInt('ACCESS_TOKEN_TTL', 3600);

const ISSUER = `http://${HOST}:${PORT}`;

// Fresh RS256 signing key for ID tokens (avoids oidc-provider's shared,
// publicly known development key and its warning).
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = {
  ...privateKey.export({ format: 'jwk' }),
  kid: crypto.randomUUID(),
  use: 'sig',
  alg: 'RS256',
};

const configuration = {
  clients: [
    {
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      // A confidential client. oidc-provider accepts client_secret_post as well
      // as client_secret_basic for a client registered with either of the two.
      token_endpoint_auth_method: 'client_secret_basic',
      // Tests may use a loopback http:// redirect URI.
      application_type: 'web',
    },
  ],

  jwks: { keys: [signingJwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },

  // Any login name is an account id; a few claims for email/profile scopes.
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          email: sub.includes('@') ? sub : `${sub}@example.test`,
          email_verified: true,
          name: sub,
          preferred_username: sub,
        };
      },
    };
  },

  // Only the authorization code flow.
  responseTypes: ['code'],

  scopes: ['openid', 'offline_access', 'email', 'profile'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
  },

  // PKCE for every authorization request. oidc-provider v9 only implements
  // the S256 method; "plain" or any other method is rejected.
  pkce: { required: () => true },

  // Rotate on every use: the presented refresh token is consumed and a new one
  // is issued. Presenting a consumed one yields invalid_grant and revokes the
  // whole grant (all its access and refresh tokens).
  rotateRefreshToken: true,
  // Default policy, spelled out: a refresh token is issued iff the client may
  // use the refresh_token grant and offline_access was granted (which in turn
  // needs prompt=consent on the authorization request).
  async issueRefreshToken(ctx, client, code) {
    return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
  },

  features: {
    devInteractions: { enabled: true },
    revocation: {
      enabled: true,
      async allowedPolicy(ctx, client, token) {
        return token.clientId === client.clientId;
      },
    },
    introspection: {
      enabled: true,
      async allowedPolicy(ctx, client, token) {
        return token.clientId === client.clientId;
      },
    },
    userinfo: { enabled: true },
  },

  clientBasedCORS: () => false,

  // Errors that cannot be redirected back to the client (unknown client,
  // bad redirect_uri, lost interaction cookies, ...) are rendered as JSON
  // (with the internal detail) instead of an HTML page, to ease debugging.
  async renderError(ctx, out, error) {
    ctx.type = 'json';
    ctx.body = { ...out, ...(error?.error_detail ? { error_detail: error.error_detail } : {}) };
  },

  // Default is 15 s, which lets an expired access token keep working at
  // /me for 15 more seconds. Same machine, same clock: make expiry exact.
  clockTolerance: 0,

  ttl: {
    AccessToken: ACCESS_TOKEN_TTL,
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: 14 * 24 * 60 * 60,
    Interaction: 60 * 60,
    Session: 14 * 24 * 60 * 60,
    Grant: 14 * 24 * 60 * 60,
  },
};

let provider;
try {
  provider = new Provider(ISSUER, configuration);
} catch (err) {
  fail(`invalid configuration: ${err?.stack || err}`);
}

provider.on('server_error', (ctx, err) => {
  process.stderr.write(`server_error on ${ctx.method} ${ctx.path}: ${err?.stack || err}\n`);
});

const server = provider.listen(PORT, HOST, () => {
  process.stdout.write(`ready ${ISSUER}\n`);
});

server.on('error', (err) => fail(`cannot listen on ${HOST}:${PORT}: ${err.message}`));

let stopping = false;
function shutdown(reason) {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`oidc-provider server: stopping (${reason})\n`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  // Never hang on shutdown.
  setTimeout(() => process.exit(0), 2000).unref();
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

// Exit when the parent goes away: EOF (or an error) on stdin.
process.stdin.on('end', () => shutdown('stdin closed'));
process.stdin.on('close', () => shutdown('stdin closed'));
process.stdin.on('error', () => shutdown('stdin error'));
process.stdin.resume();
