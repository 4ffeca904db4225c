// An independent JWT check (the `jose` package, not gatehouse's code): verifies a token against a JWKS
// document saved in a file, and prints the verified payload as JSON.
//
//   node verify.mjs --jwks FILE --token TOKEN --issuer ISS --audience AUD [--alg RS256]
//
// Exit status 0 with the payload on stdout; 1 with the reason on stderr.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { createLocalJWKSet, jwtVerify } from 'jose';

const { values } = parseArgs({
  options: {
    jwks: { type: 'string' },
    token: { type: 'string' },
    issuer: { type: 'string' },
    audience: { type: 'string' },
    alg: { type: 'string' },
  },
});
try {
  const keys = createLocalJWKSet(JSON.parse(fs.readFileSync(values.jwks, 'utf8')));
  const { payload, protectedHeader } = await jwtVerify(values.token, keys, {
    issuer: values.issuer,
    audience: values.audience,
    algorithms: values.alg ? [values.alg] : undefined,
  });
  process.stdout.write(JSON.stringify({ header: protectedHeader, payload }) + '\n');
} catch (e) {
  process.stderr.write(`verify: ${e.code ?? ''} ${e.message}\n`);
  process.exit(1);
}
