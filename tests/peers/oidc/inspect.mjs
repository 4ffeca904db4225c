// Looks at a provider instance and its tokens from the outside, the way a relying party would, with jose.
// check.sh is built on it; it is handy by hand too.
//
//   node inspect.mjs decode TOKEN              header and payload, as JSON (no verification)
//   node inspect.mjs field TOKEN header.X|payload.X   one member of them, as JSON unless it is a string
//   node inspect.mjs discovery ISSUER [--ca CAFILE]   checks the discovery document; prints it on one line
//   node inspect.mjs jwks ISSUER [--ca CAFILE]        checks the JWKS (one RS256 and one ES256 public key,
//                                                     distinct kids); prints the kids, RS256 first
//   node inspect.mjs verify TOKEN --issuer ISSUER [--keys-of ISSUER2] [--expect ok|expired|rejected]
//                   [--alg A] [--aud A] [--sub S] [--scopes "a b"] [--ttl N] [--ca CAFILE]
//       Verifies TOKEN against the JWKS of ISSUER2 (default ISSUER), found through discovery.
//       ok (default): the signature and every claim are right (aud default gitlab-ai-gateway, ttl 3600,
//                     alg RS256, scopes none; sub checked only when given).
//       expired:      the signature is good, and the token is refused only because it has expired.
//       rejected:     no key of that JWKS verifies the signature, whatever the kid says (--alg defaults
//                     to the token's own alg here).
// --ca CAFILE: an https ISSUER is fetched trusting the CAs in CAFILE (PEM) and no other (certificate
// verification is never turned off).
// Exit status 0 when the check holds, 1 (with the reason on stderr) when it does not.
import fs from 'node:fs';
import https from 'node:https';
import { parseArgs, isDeepStrictEqual } from 'node:util';
import * as jose from 'jose';
import { DEFAULTS, glueOptionValues } from './shape.mjs';

class CheckFailed extends Error {}
const must = (cond, msg) => { if (!cond) throw new CheckFailed(msg); };

// --ca: the trusted CAs for https (fetch has no option for that, node:https has `ca`)
let ca;

// a minimal fetch over node:https with `ca`: status, ok, headers.get, json
function httpsGet(url) {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, timeout: 10000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({
        status: res.statusCode,
        ok: res.statusCode >= 200 && res.statusCode < 300,
        headers: { get: (h) => res.headers[h.toLowerCase()] ?? null },
        json: async () => JSON.parse(text),
      }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

async function getJson(url) {
  const res = ca && url.startsWith('https:') ? await httpsGet(url) : await fetch(url, { signal: AbortSignal.timeout(10000) });
  must(res.ok, `GET ${url}: ${res.status}`);
  must(/^application\/(jwk-set\+)?json/.test(res.headers.get('content-type') ?? ''), `GET ${url}: content-type ${res.headers.get('content-type')}`);
  return res.json();
}

async function discovery(issuer) {
  const d = await getJson(`${issuer}/.well-known/openid-configuration`);
  must(d.issuer === issuer, `discovery issuer is ${d.issuer}, want ${issuer}`);
  must(d.jwks_uri === `${issuer}/jwks`, `jwks_uri is ${d.jwks_uri}`);
  must(d.token_endpoint === `${issuer}/token`, `token_endpoint is ${d.token_endpoint}`);
  must(d.grant_types_supported?.includes('client_credentials'), 'client_credentials not in grant_types_supported');
  return d;
}

async function jwks(issuer) {
  const d = await discovery(issuer);
  const set = await getJson(d.jwks_uri);
  const keys = set.keys ?? [];
  must(keys.length === 2, `JWKS has ${keys.length} keys, want 2`);
  const rs = keys.find((k) => k.alg === 'RS256');
  const es = keys.find((k) => k.alg === 'ES256');
  must(rs && rs.kty === 'RSA' && rs.use === 'sig', 'no RSA key for RS256 (use sig)');
  must(es && es.kty === 'EC' && es.crv === 'P-256' && es.use === 'sig', 'no P-256 key for ES256 (use sig)');
  must(rs.kid && es.kid && rs.kid !== es.kid, `kids missing or equal: ${rs.kid} ${es.kid}`);
  for (const k of keys) {
    for (const priv of ['d', 'p', 'q', 'dp', 'dq', 'qi']) must(!(priv in k), `JWKS key ${k.kid} has private member ${priv}`);
  }
  return { set, kids: [rs.kid, es.kid] };
}

function decode(token) {
  return { header: jose.decodeProtectedHeader(token), payload: jose.decodeJwt(token) };
}

async function verify(token, o) {
  const issuer = o.issuer;
  const { set } = await jwks(o['keys-of'] ?? issuer);
  const expect = o.expect ?? 'ok';
  // to show that the keys do not fit, accept whatever alg the token says it has
  const alg = o.alg ?? (expect === 'rejected' ? jose.decodeProtectedHeader(token).alg : DEFAULTS.alg);
  const aud = o.aud ?? DEFAULTS.aud;
  const ttl = o.ttl === undefined ? DEFAULTS.ttl : Number(o.ttl);
  const scopes = (o.scopes ?? '').split(/\s+/).filter(Boolean);
  const options = {
    issuer,
    audience: aud,
    algorithms: [alg],
    typ: 'at+jwt',
    requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti'],
  };
  const keySet = jose.createLocalJWKSet(set);

  if (expect === 'rejected') {
    try {
      await jose.jwtVerify(token, keySet, options);
      throw new CheckFailed('the token verifies with these keys');
    } catch (e) {
      if (e instanceof CheckFailed) throw e;
      must(['ERR_JWKS_NO_MATCHING_KEY', 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED'].includes(e.code), `refused, but for another reason: ${e.code} ${e.message}`);
    }
    // and not only because the kid is unknown: no key of the set verifies the signature
    const { header } = decode(token);
    for (const jwk of set.keys) {
      if (jwk.alg !== header.alg) continue;
      const key = await jose.importJWK(jwk, jwk.alg);
      try {
        await jose.compactVerify(token, key);
        throw new CheckFailed(`key ${jwk.kid} verifies the signature`);
      } catch (e) {
        if (e instanceof CheckFailed) throw e;
        must(e.code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED', `key ${jwk.kid}: ${e.code} ${e.message}`);
      }
    }
    return 'rejected: no key of that JWKS verifies it';
  }

  let payload;
  let header;
  if (expect === 'expired') {
    try {
      await jose.jwtVerify(token, keySet, options);
      throw new CheckFailed('the token is accepted');
    } catch (e) {
      if (e instanceof CheckFailed) throw e;
      // jose checks the signature before the claims, so ERR_JWT_EXPIRED means the signature is good
      must(e.code === 'ERR_JWT_EXPIRED', `refused, but not as expired: ${e.code} ${e.message}`);
      ({ payload } = e);
      header = jose.decodeProtectedHeader(token);
      must(payload.iss === issuer, `iss is ${payload.iss}`);
    }
  } else {
    must(expect === 'ok', `--expect ${expect}?`);
    ({ payload, protectedHeader: header } = await jose.jwtVerify(token, keySet, options));
  }

  must(set.keys.some((k) => k.kid === header.kid && k.alg === header.alg), `header kid ${header.kid} / alg ${header.alg} not in the JWKS`);
  if (o.sub !== undefined) must(payload.sub === o.sub, `sub is ${JSON.stringify(payload.sub)}, want ${JSON.stringify(o.sub)}`);
  must(payload.aud === aud, `aud is ${JSON.stringify(payload.aud)}, want the string ${JSON.stringify(aud)}`);
  must(Array.isArray(payload.scopes) && isDeepStrictEqual(payload.scopes, scopes),
    `scopes is ${JSON.stringify(payload.scopes)}, want ${JSON.stringify(scopes)}`);
  must(payload.exp - payload.iat === ttl, `exp - iat is ${payload.exp - payload.iat}, want ${ttl}`);
  must(payload.nbf === payload.iat, `nbf ${payload.nbf} != iat ${payload.iat}`);
  must(Math.abs(payload.iat - Date.now() / 1000) < 30, `iat ${payload.iat} is not now`);
  must(typeof payload.jti === 'string' && payload.jti.length >= 16, `jti ${JSON.stringify(payload.jti)}`);
  return `${expect}: alg ${header.alg} kid ${header.kid} sub ${payload.sub} jti ${payload.jti}`;
}

// readCa ARGS: the --ca option of discovery and jwks
function readCa(args) {
  const options = { ca: { type: 'string' } };
  const { values } = parseArgs({ args: glueOptionValues(args, options), options });
  if (values.ca) ca = fs.readFileSync(values.ca);
}

async function main(argv) {
  const [cmd, arg, ...rest] = argv;
  switch (cmd) {
    case 'decode':
      return JSON.stringify(decode(arg), null, 2);
    case 'field': {
      const [part, name] = (rest[0] ?? '').split('.');
      const v = decode(arg)[part]?.[name];
      must(v !== undefined, `no ${rest[0]} in the token`);
      return typeof v === 'string' ? v : JSON.stringify(v);
    }
    case 'discovery':
      readCa(rest);
      return JSON.stringify(await discovery(arg));
    case 'jwks':
      readCa(rest);
      return (await jwks(arg)).kids.join('\n');
    case 'verify': {
      const options = Object.fromEntries(['issuer', 'keys-of', 'expect', 'alg', 'aud', 'sub', 'scopes', 'ttl', 'ca']
        .map((k) => [k, { type: 'string' }]));
      const { values } = parseArgs({ args: glueOptionValues(rest, options), options });
      must(values.issuer, '--issuer is required');
      if (values.ca) ca = fs.readFileSync(values.ca);
      return verify(arg, values);
    }
    default:
      throw new CheckFailed('usage: node inspect.mjs decode|discovery|jwks|verify ... (see the top of inspect.mjs)');
  }
}

try {
  must(process.argv[3], 'missing argument');
  process.stdout.write(`${await main(process.argv.slice(2))}\n`);
} catch (e) {
  process.stderr.write(`oidc inspect: ${e instanceof CheckFailed ? e.message : `${e.code ?? ''} ${e.message}`}\n`);
  process.exitCode = 1;
}
