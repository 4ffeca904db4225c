// Signing keys of one provider instance: a JSON file {"keys": [private JWKs]} with one RS256 (RSA 2048)
// and one ES256 (P-256) key. The kid of each is its RFC 7638 thumbprint, so a new key always has a new kid.
//
//   node keys.mjs new FILE    make a new key set, replace FILE with it (atomically, mode 600), print the kids
//   node keys.mjs kids FILE   print the kids in FILE
//   node keys.mjs pem FILE    print the RS256 public key as PEM (what a Keycloak realm shows as its public key)
// Kids are printed one a line, RS256 first.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { calculateJwkThumbprint } from 'jose';

async function privateJwk(alg) {
  const { privateKey } = alg === 'RS256'
    ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
    : crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = privateKey.export({ format: 'jwk' });
  // the thumbprint uses only the public members, so the public JWK in the JWKS has the same kid
  const kid = await calculateJwkThumbprint(jwk, 'sha256');
  return { kid, alg, use: 'sig', ...jwk };
}

export async function newKeySet() {
  return { keys: [await privateJwk('RS256'), await privateJwk('ES256')] };
}

export function readKeySet(file) {
  const set = JSON.parse(fs.readFileSync(file, 'utf8'));
  const algs = (set.keys || []).map((k) => k.alg).sort().join(',');
  if (algs !== 'ES256,RS256' || !set.keys.every((k) => k.kid && k.d)) {
    throw new Error(`${file}: expected one private RS256 and one private ES256 key, each with a kid`);
  }
  return set;
}

function writeAtomically(file, text) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

async function main(argv) {
  const [cmd, file] = argv;
  if (!file || !['new', 'kids', 'pem'].includes(cmd)) {
    process.stderr.write('usage: node keys.mjs new|kids|pem FILE\n');
    return 2;
  }
  if (cmd === 'pem') {
    const { d, p, q, dp, dq, qi, ...pub } = readKeySet(file).keys.find((k) => k.alg === 'RS256');
    process.stdout.write(crypto.createPublicKey({ key: pub, format: 'jwk' }).export({ type: 'spki', format: 'pem' }));
    return 0;
  }
  if (cmd === 'new') writeAtomically(file, `${JSON.stringify(await newKeySet(), null, 2)}\n`);
  const { keys } = readKeySet(file);
  for (const alg of ['RS256', 'ES256']) process.stdout.write(`${keys.find((k) => k.alg === alg).kid}\n`);
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then((rc) => { process.exitCode = rc; }, (e) => {
    process.stderr.write(`oidc keys: ${e.message}\n`);
    process.exitCode = 1;
  });
}
