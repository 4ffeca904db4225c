// Asks a running provider instance for one JWT access token and prints it (token.sh runs this).
//
//   node token.mjs --issuer URL [--alg RS256|ES256] [--aud AUD] [--scopes "a b c"] [--ttl SECONDS]
//                  [--sub SUBJECT] [--json]
//
// A client_credentials grant at URL/token as client gatehouse-e2e, with the token's shape in the resource
// indicator and the scopes in `scope` (see shape.mjs). Prints the access token, or with --json the whole
// token response. Errors go to stderr, exit status 1.
import http from 'node:http';
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

// node:http rather than fetch: loading fetch (undici) alone costs node about 0.1 s
function post(url, headers, payload) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers, timeout: 10000 }, (res) => {
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
  fail(`no answer from ${opt.issuer} (${e.code || e.message}); is the instance started?`);
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
