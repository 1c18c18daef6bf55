// P2 benchmark peer: panva oidc-provider 9.x (OpenID-certified OP) as the Node reference for token introspection.
//
//   node bench/peer/server.mjs PORT        (or PEER_PORT=PORT node bench/peer/server.mjs)
//
// One Node process, plain HTTP on 127.0.0.1, default in-memory adapter, one confidential client
// (client_secret_basic) allowed to introspect, features.introspection + features.clientCredentials enabled.
// Once listening it mints one opaque access token of its own, bound to an account and a grant (what an
// authorization-code flow leaves behind, the same kind of token authsvc's benchmark introspects), and prints one JSON
// line on stdout: {"issuer", "client_id", "client_secret", "access_token"}. Client-credentials tokens can be had
// from POST /token as usual. Nothing else is printed per request; oidc-provider's start-up notices (dev-only
// adapter, Node 20 "unsupported runtime") go to stderr only when PEER_VERBOSE=1.
import { createServer } from 'node:http';
import { generateKeyPairSync } from 'node:crypto';

const verbose = process.env.PEER_VERBOSE === '1';
if (!verbose) {
  // oidc-provider reports through console.info/console.warn with an "oidc-provider " prefix
  // (lib/helpers/attention.js); drop those, keep anything else.
  for (const level of ['info', 'warn']) {
    const orig = console[level].bind(console);
    console[level] = (...args) => {
      if (typeof args[0] === 'string' && args[0].includes('oidc-provider ')) return;
      orig(...args);
    };
  }
}
// Imported after the console filter is in place: the runtime check runs at module load.
const { default: Provider } = await import('oidc-provider');

const port = Number(process.argv[2] || process.env.PEER_PORT || 0);
const host = '127.0.0.1';
const CLIENT_ID = process.env.PEER_CLIENT_ID || 'bench-rs';
const CLIENT_SECRET = process.env.PEER_CLIENT_SECRET || 'benchpeersecret0123456789abcdefghijklmnop';
// PEER_DPOP_JKT=<RFC 7638 thumbprint>: DPoP on, and the minted access token is bound to that key (RFC 9449: its
// introspection answers token_type DPoP and cnf.jkt) — what bench/p2_peer.py --dpop compares with authsvc.
const DPOP_JKT = process.env.PEER_DPOP_JKT || '';

// Own signing key, so the provider does not fall back to its dev-only keys (and warn about them). Nothing in the
// benchmark signs anything: tokens are opaque.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'bench', alg: 'RS256', use: 'sig' };

const server = createServer();
await new Promise((resolve) => server.listen(port, host, resolve));
const issuer = `http://${host}:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
    response_types: ['code'],
    redirect_uris: ['https://rp.example/cb'],
    scope: 'openid offline_access api:read',
  }],
  scopes: ['openid', 'offline_access', 'api:read'],
  jwks: { keys: [jwk] },
  cookies: { keys: ['bench-peer-cookie-key'] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    // Same policy as the default (a confidential client may introspect any token), declared so the provider does
    // not print its "you SHOULD change" notice on the first request.
    introspection: {
      enabled: true,
      allowedPolicy: async (ctx, client, token) => client.clientAuthMethod !== 'none'
        || token.clientId === ctx.oidc.client.clientId,
    },
    revocation: { enabled: false },
    // No resource indicator is ever sent, so access tokens stay opaque (format 'opaque' is the default when no
    // resource server is resolved; a resource server with accessTokenFormat 'jwt' would make them JWTs).
    resourceIndicators: { enabled: false },
    ...(DPOP_JKT ? { dPoP: { enabled: true } } : {}),
  },
  ttl: {
    AccessToken: 3600,
    ClientCredentials: 3600,
    Grant: 3600,
    IdToken: 3600,
    Interaction: 600,
    Session: 3600,
  },
});
// Plain HTTP on loopback, no reverse proxy in front: do not trust X-Forwarded-*.
provider.proxy = false;
// Koa prints every server error with a stack by default; count them instead and report on exit.
let serverErrors = 0;
provider.on('server_error', (ctx, err) => {
  serverErrors += 1;
  if (verbose || serverErrors <= 3) console.error('peer server_error', err);
});
provider.on('error', () => {});

server.on('request', provider.callback());

// The token an authorization-code flow would leave behind: a Grant for an account and an access token bound to it.
const client = await provider.Client.find(CLIENT_ID);
const grant = new provider.Grant({ accountId: 'user0', clientId: CLIENT_ID });
grant.addOIDCScope('openid api:read');
const grantId = await grant.save();
const accessToken = await new provider.AccessToken({
  accountId: 'user0',
  client,
  grantId,
  gty: 'authorization_code',
  scope: 'openid api:read',
  ...(DPOP_JKT ? { jkt: DPOP_JKT } : {}),
}).save();

process.stdout.write(`${JSON.stringify({
  issuer, client_id: CLIENT_ID, client_secret: CLIENT_SECRET, access_token: accessToken,
})}\n`);

const stop = () => {
  if (serverErrors) console.error(`peer: ${serverErrors} server errors`);
  server.closeAllConnections?.();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
