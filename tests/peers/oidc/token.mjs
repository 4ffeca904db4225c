// Asks a running provider instance for one JWT access token and prints it (token.sh runs this).
//
//   node token.mjs --issuer URL [--ca CAFILE] [--alg RS256|ES256] [--aud AUD] [--scopes "a b c"]
//                  [--ttl SECONDS] [--sub SUBJECT] [--json]
//
// An https URL is asked with certificate verification, trusting the CAs in CAFILE (PEM) and no other, or
// the system's CAs without --ca.
// A client_credentials grant at URL/token as client gatehouse-e2e, with the token's shape in the resource
// indicator and the scopes in `scope` (see shape.mjs). Prints the access token, or with --json the whole
// token response. Errors go to stderr, exit status 1.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { parseArgs } from 'node:util';
import { CLIENT_ID, CLIENT_SECRET, encodeResource, glueOptionValues, parseTtl } from './shape.mjs';

function fail(msg) {
  process.stderr.write(`oidc token: ${msg}\n`);
  process.exit(1);
}

let opt;
try {
  const options = {
    issuer: { type: 'string' },
    ca: { type: 'string' },
    alg: { type: 'string' },
    aud: { type: 'string' },
    scopes: { type: 'string' },
    ttl: { type: 'string' },
    sub: { type: 'string' },
    json: { type: 'boolean' },
  };
  ({ values: opt } = parseArgs({ args: glueOptionValues(process.argv.slice(2), options), options }));
} catch (e) {
  fail(e.message);
}
if (!opt.issuer) fail('--issuer is required');
const secure = opt.issuer.startsWith('https:');
if (opt.ca && !secure) fail(`--ca is for an https issuer, not ${opt.issuer}`);
let ca;
if (opt.ca) {
  try {
    ca = fs.readFileSync(opt.ca);
  } catch (e) {
    fail(`cannot read the CA file: ${e.message}`);
  }
}

let resource;
try {
  resource = encodeResource({
    alg: opt.alg,
    aud: opt.aud,
    ttl: opt.ttl === undefined ? undefined : parseTtl(opt.ttl),
    sub: opt.sub,
  });
} catch (e) {
  fail(e.message);
}
const form = new URLSearchParams({ grant_type: 'client_credentials', resource });
const scopes = (opt.scopes ?? '').split(/[\s,]+/).filter(Boolean);
if (scopes.length) form.set('scope', scopes.join(' '));

// node:http(s) rather than fetch: loading fetch (undici) alone costs node about 0.1 s, and fetch has no `ca`
function post(url, headers, payload) {
  return new Promise((resolve, reject) => {
    const options = { method: 'POST', headers, timeout: 10000 };
    // `ca` replaces the default trust store: only that CA is trusted (verification stays on)
    if (ca) options.ca = ca;
    const req = (secure ? https : http).request(url, options, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, text }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(payload);
  });
}

let res;
try {
  res = await post(`${opt.issuer}/token`, {
    authorization: `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`,
    'content-type': 'application/x-www-form-urlencoded',
  }, form.toString());
} catch (e) {
  if (e.code === 'ECONNREFUSED' || !e.code) fail(`no answer from ${opt.issuer} (${e.code || e.message}); is the instance started?`);
  // e.g. a TLS error: the certificate is not one that CAFILE vouches for
  fail(`no answer from ${opt.issuer}: ${e.code}: ${e.message}`);
}
const body = res.text;
let json;
try {
  json = JSON.parse(body);
} catch {
  fail(`${opt.issuer}/token answered ${res.status} with non-JSON: ${body.slice(0, 300)}`);
}
if (res.status !== 200 || typeof json.access_token !== 'string') {
  fail(`${opt.issuer}/token answered ${res.status}: ${json.error ?? ''} ${json.error_description ?? body}`);
}
process.stdout.write(`${opt.json ? JSON.stringify(json) : json.access_token}\n`);
