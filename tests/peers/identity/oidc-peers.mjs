// Test peer: real npm oidc-provider instances (generic OIDC, Google-shaped, two Microsoft-shaped tenants) on one loopback port.
//
// Usage: node oidc-peers.mjs --client-id ID --client-secret SECRET --redirect-uri URI [--redirect-uri URI ...] [--port 0]
// Env:   PORTCULLIS_PEER_OIDC_PROVIDER = the installed oidc-provider package directory
//        (scripts/lib/tools.sh ensure_identity_peers sets it).
// Prints ONE JSON line on stdout once every instance is ready, then serves until killed:
//   {"base":B,"oidc":B+"/oidc","google":B+"/google","microsoft":{"authority":B,"tenant_a":GUID,"tenant_b":GUID}}
// Everything else (oidc-provider notices included) goes to stderr.
//
// Each instance: its own issuer, RS256 keys generated at start (the two Microsoft tenants share
// one key set, as Entra tenants do), PKCE S256 required, one confidential client (client_secret_basic
// and client_secret_post), response_type code only, no dev login UI. Sign-in is automatic: the
// interaction signs in the account named by `login_hint` (account id or email, first match), else
// the instance's default account, set with GET /_peer/login-as?instance=<name>&account=<id> (204,
// 404 for an unknown instance or account). There is no SSO: every authorization request signs in
// afresh (the `_session` cookie is dropped before oidc-provider sees it), so switching users never
// meets oidc-provider's "log out first" page.
// Microsoft: issuers B/<tenant>/v2.0; B/common/v2.0 and B/organizations/v2.0 serve tenant A's and
// tenant B's discovery documents with the templated issuer "B/{tenantid}/v2.0", like Entra.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

// oidc-provider prints notices with console.info (stdout); stdout is reserved for the JSON line.
console.log = console.info = (...args) => console.error(...args);

function fail(message) {
  console.error(`oidc-peers: ${message}`);
  process.exit(2);
}

// --- Command line -------------------------------------------------------------------------------
const opts = { redirectUris: [], port: 0 };
for (let i = 2; i < process.argv.length; i += 1) {
  const [flag, value] = [process.argv[i], process.argv[i + 1]];
  if (value === undefined) fail(`${flag} needs a value`);
  if (flag === '--client-id') opts.clientId = value;
  else if (flag === '--client-secret') opts.clientSecret = value;
  else if (flag === '--redirect-uri') opts.redirectUris.push(value);
  else if (flag === '--port') opts.port = Number(value);
  else fail(`unknown argument ${flag}`);
  i += 1;
}
if (!opts.clientId || !opts.clientSecret || opts.redirectUris.length === 0) {
  fail('usage: --client-id ID --client-secret SECRET --redirect-uri URI [--redirect-uri URI ...] [--port 0]');
}

// --- Load oidc-provider from the installed package (ESM ignores NODE_PATH) ----------------------
const pkgDir = process.env.PORTCULLIS_PEER_OIDC_PROVIDER;
if (!pkgDir) fail('PORTCULLIS_PEER_OIDC_PROVIDER is unset (run ensure_identity_peers from scripts/lib/tools.sh)');
let pkg;
try {
  pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
} catch (err) {
  fail(`cannot read ${pkgDir}/package.json: ${err.message}`);
}
const exp = pkg.exports;
const entry = (typeof exp === 'string' && exp)
  || exp?.['.']?.import || exp?.['.']?.default || (typeof exp?.['.'] === 'string' && exp['.'])
  || exp?.import || exp?.default || pkg.main || 'index.js';
const { default: Provider, interactionPolicy } = await import(pathToFileURL(path.resolve(pkgDir, entry)).href);
console.error(`oidc-peers: oidc-provider ${pkg.version}`);

// --- Fixture accounts ----------------------------------------------------------------------------
const TENANT_A = '11111111-1111-4111-8111-111111111111';
const TENANT_B = '22222222-2222-4222-8222-222222222222';

// Generic OIDC and Google share users; Google adds `hd` for corp.example (Workspace) accounts.
const PEOPLE = [
  { id: 'alice', email: 'alice@corp.example', email_verified: true, name: 'Alice', hd: 'corp.example' },
  { id: 'bob', email: 'bob@other.example', email_verified: true, name: 'Bob' },
  { id: 'mallory', email: 'alice@corp.example', email_verified: false, name: 'Mallory' },
  { id: 'carol', email: 'carol@corp.example', name: 'Carol', hd: 'corp.example' }, // no email_verified
  { id: 'dora', email: 'DORA@Corp.Example', email_verified: true, name: 'Dora', hd: 'corp.example' },
];
const genericAccounts = PEOPLE.map(({ id, hd, ...claims }) => ({ id, sub: id, claims }));
const googleAccounts = PEOPLE.map(({ id, ...claims }) => ({ id, sub: id, claims }));

// Microsoft: sub is a stable opaque (pairwise-looking) value, oid a fixed GUID, tid the tenant.
// xms_edov ("email domain owner verified") is present only where the email is verified.
function msAccount(tid, id, oid, email, name, edov) {
  const sub = crypto.createHash('sha256').update(`${tid}:${oid}`).digest('base64url').slice(0, 43);
  const claims = { tid, oid, email, name, preferred_username: email, ...(edov ? { xms_edov: true } : {}) };
  return { id, sub, claims };
}
const tenantAAccounts = [
  msAccount(TENANT_A, 'alice', 'aaaaaaaa-0000-4000-8000-000000000001', 'alice@corp.example', 'Alice', true),
  msAccount(TENANT_A, 'eve', 'aaaaaaaa-0000-4000-8000-000000000002', 'eve@corp.example', 'Eve', false),
];
const tenantBAccounts = [
  // nOAuth: mallory controls tenant B and sets her (unverified) email to alice's.
  msAccount(TENANT_B, 'mallory', 'bbbbbbbb-0000-4000-8000-000000000001', 'alice@corp.example', 'Mallory', false),
  msAccount(TENANT_B, 'bob', 'bbbbbbbb-0000-4000-8000-000000000002', 'bob@other.example', 'Bob', true),
];

// --- Keys ----------------------------------------------------------------------------------------
function signingKeys() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: crypto.randomUUID(), alg: 'RS256', use: 'sig' }] };
}

// --- Server --------------------------------------------------------------------------------------
const instances = new Map(); // name -> { prefix, provider, handler, accounts, defaultId }
let ready = false;

const server = http.createServer((req, res) => {
  route(req, res).catch((err) => {
    console.error('oidc-peers: request failed:', err);
    if (!res.headersSent) send(res, 500, { error: 'server_error', error_description: String(err.message) });
  });
});
server.listen(opts.port, '127.0.0.1', start);

function send(res, status, body) {
  const data = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) });
  res.end(data);
}

async function start() {
  const base = `http://127.0.0.1:${server.address().port}`;
  const msKeys = signingKeys();
  const specs = [
    ['oidc', '/oidc', genericAccounts, 'alice', signingKeys(),
      { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] }],
    ['google', '/google', googleAccounts, 'alice', signingKeys(),
      { openid: ['sub', 'hd'], email: ['email', 'email_verified'], profile: ['name'] }],
    ['tenant_a', `/${TENANT_A}/v2.0`, tenantAAccounts, 'alice', msKeys,
      { openid: ['sub', 'tid', 'oid'], email: ['email', 'xms_edov'], profile: ['name', 'preferred_username'] }],
    // Tenant B has no alice: its default is the ordinary user; the nOAuth user must be asked for.
    ['tenant_b', `/${TENANT_B}/v2.0`, tenantBAccounts, 'bob', msKeys,
      { openid: ['sub', 'tid', 'oid'], email: ['email', 'xms_edov'], profile: ['name', 'preferred_username'] }],
  ];
  for (const [name, prefix, accounts, defaultId, jwks, claims] of specs) {
    const inst = { name, prefix, accounts, defaultId };
    inst.provider = makeProvider(inst, `${base}${prefix}`, jwks, claims);
    inst.handler = inst.provider.callback();
    instances.set(name, inst);
  }
  ready = true;
  process.stdout.write(`${JSON.stringify({
    base,
    oidc: `${base}/oidc`,
    google: `${base}/google`,
    microsoft: { authority: base, tenant_a: TENANT_A, tenant_b: TENANT_B },
  })}\n`);
  console.error(`oidc-peers: listening on ${base}`);
}

function makeProvider(inst, issuer, jwks, claims) {
  const policy = interactionPolicy.base();
  const provider = new Provider(issuer, {
    clients: [{
      client_id: opts.clientId,
      client_secret: opts.clientSecret,
      redirect_uris: opts.redirectUris,
      response_types: ['code'],
      grant_types: ['authorization_code'],
      // oidc-provider accepts client_secret_post too for a client registered as _basic.
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
    responseTypes: ['code'],
    scopes: ['openid', 'email', 'profile'],
    claims,
    // Put the scopes' claims (email, name, tid, ...) in the ID token of the code flow too.
    conformIdTokenClaims: false,
    pkce: { required: () => true }, // oidc-provider 9 supports S256 only
    allowOmittingSingleRegisteredRedirectUri: false,
    features: { devInteractions: { enabled: false } },
    interactions: { policy, url: (ctx, interaction) => `${inst.prefix}/interaction/${interaction.uid}` },
    findAccount: (ctx, sub) => {
      const account = inst.accounts.find((a) => a.sub === sub);
      return account && { accountId: sub, claims: async () => ({ sub, ...account.claims }) };
    },
    jwks,
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    ttl: { AccessToken: 3600, AuthorizationCode: 300, IdToken: 3600, Interaction: 600, Session: 3600, Grant: 3600 },
    clientBasedCORS: () => false,
    renderError: async (ctx, out) => { ctx.type = 'json'; ctx.body = out; },
  });
  provider.on('server_error', (ctx, err) => console.error(`oidc-peers[${inst.name}]: server_error`, err));
  return provider;
}

// The account to sign in: login_hint (account id, then email, case-insensitive) or the default.
function pickAccount(inst, hint) {
  const h = (hint || '').toLowerCase();
  const byHint = h && (inst.accounts.find((a) => a.id === hint)
    || inst.accounts.find((a) => (a.claims.email || '').toLowerCase() === h));
  if (hint && !byHint) console.error(`oidc-peers[${inst.name}]: login_hint ${hint} matches no account, using ${inst.defaultId}`);
  return byHint || inst.accounts.find((a) => a.id === inst.defaultId);
}

// Auto-approving interaction: signs in the chosen account and grants every requested scope.
async function interaction(inst, req, res) {
  const { provider } = inst;
  const details = await provider.interactionDetails(req, res);
  const account = pickAccount(inst, details.params.login_hint);
  const grant = new provider.Grant({ accountId: account.sub, clientId: details.params.client_id });
  grant.addOIDCScope(String(details.params.scope || 'openid'));
  const missingClaims = details.prompt.details?.missingOIDCClaims;
  if (missingClaims) grant.addOIDCClaims(missingClaims);
  const grantId = await grant.save();
  console.error(`oidc-peers[${inst.name}]: signing in ${account.id}`);
  await provider.interactionFinished(req, res, { login: { accountId: account.sub }, consent: { grantId } },
    { mergeWithLastSubmission: false });
}

// Entra's multi-tenant discovery: a tenant's document with the templated issuer.
async function templatedDiscovery(inst, res) {
  const doc = await (await fetch(`${inst.provider.issuer}/.well-known/openid-configuration`)).json();
  const authority = inst.provider.issuer.slice(0, -inst.prefix.length);
  send(res, 200, { ...doc, issuer: `${authority}/{tenantid}/v2.0` });
}

function dropSessionCookie(req) {
  if (!req.headers.cookie) return;
  req.headers.cookie = req.headers.cookie.split(';')
    .filter((c) => !/^\s*_session(\.sig)?=/.test(c)).join(';');
}

async function route(req, res) {
  if (!ready) return send(res, 503, { error: 'starting' });
  const url = new URL(req.url, 'http://127.0.0.1');
  if (url.pathname === '/_peer/login-as' && req.method === 'GET') {
    const inst = instances.get(url.searchParams.get('instance'));
    const id = url.searchParams.get('account');
    if (!inst || !inst.accounts.some((a) => a.id === id)) {
      return send(res, 404, { error: 'unknown instance or account' });
    }
    inst.defaultId = id;
    console.error(`oidc-peers[${inst.name}]: default account is now ${id}`);
    return send(res, 204);
  }
  if (url.pathname === '/common/v2.0/.well-known/openid-configuration') {
    return templatedDiscovery(instances.get('tenant_a'), res);
  }
  if (url.pathname === '/organizations/v2.0/.well-known/openid-configuration') {
    return templatedDiscovery(instances.get('tenant_b'), res);
  }
  for (const inst of instances.values()) {
    if (url.pathname !== inst.prefix && !url.pathname.startsWith(`${inst.prefix}/`)) continue;
    if (url.pathname.startsWith(`${inst.prefix}/interaction/`) && req.method === 'GET') {
      return interaction(inst, req, res).catch((err) => send(res, err.statusCode || 400,
        { error: err.error || 'invalid_request', error_description: err.error_description || err.message }));
    }
    // Mount: oidc-provider routes on the path below its issuer's and derives the mount path
    // for the URLs it emits from req.originalUrl minus req.url (what Express' app.use does).
    dropSessionCookie(req);
    req.originalUrl = req.url;
    const rest = req.url.slice(inst.prefix.length);
    req.url = rest.startsWith('/') ? rest : `/${rest}`;
    return inst.handler(req, res);
  }
  return send(res, 404, { error: 'not found' });
}
