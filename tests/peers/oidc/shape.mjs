// What a test can ask for in a token, and how that request travels to the provider.
// Shared by server.mjs (which decodes it) and token.mjs (which encodes it).
//
// The token is a real client_credentials grant of the provider. The knobs that OAuth has no parameter for
// (audience, signing alg, lifetime, subject) ride in the resource indicator (RFC 8707), in this harness's
// own form:
//   urn:gatehouse:test-token?aud=<audience>&alg=<RS256|ES256>&ttl=<seconds>&sub=<subject>
// Every query parameter is optional. The unit primitives go in the ordinary OAuth `scope` parameter.
// Any other absolute URI as resource indicator is taken as the audience itself, with the defaults below.

// The one client of every instance (client_secret_basic, grant type client_credentials only).
export const CLIENT_ID = 'gatehouse-e2e';
export const CLIENT_SECRET = 'gatehouse-e2e-secret';

export const RESOURCE_BASE = 'urn:gatehouse:test-token';
export const ALGS = ['RS256', 'ES256'];
export const DEFAULTS = Object.freeze({ aud: 'gitlab-ai-gateway', alg: 'RS256', ttl: 3600, sub: undefined });

// Longest accepted lifetime, either way (a negative ttl makes a token that expired that long ago).
const MAX_TTL = 10 * 365 * 24 * 3600;

// token shape { aud, alg, ttl, sub } -> resource indicator; throws on a bad value
export function encodeResource(shape) {
  const s = checkShape({ ...DEFAULTS, ...dropUndefined(shape) });
  const u = new URL(RESOURCE_BASE);
  u.searchParams.set('aud', s.aud);
  u.searchParams.set('alg', s.alg);
  u.searchParams.set('ttl', String(s.ttl));
  if (s.sub !== undefined) u.searchParams.set('sub', s.sub);
  return u.href;
}

// resource indicator -> token shape; throws (Error with a readable message) on a bad one
export function decodeResource(indicator) {
  let u;
  try {
    u = new URL(indicator);
  } catch {
    throw new Error(`not an absolute URI: ${indicator}`);
  }
  const base = `${u.protocol}${u.pathname}`;
  if (base !== RESOURCE_BASE) return checkShape({ ...DEFAULTS, aud: indicator });
  const known = new Set(['aud', 'alg', 'ttl', 'sub']);
  const shape = { ...DEFAULTS };
  for (const [k, v] of u.searchParams) {
    if (!known.has(k)) throw new Error(`unknown parameter '${k}' in ${RESOURCE_BASE}`);
    shape[k] = k === 'ttl' ? parseTtl(v) : v;
  }
  return checkShape(shape);
}

export function parseTtl(v) {
  if (!/^-?[0-9]+$/.test(String(v))) throw new Error(`ttl must be a whole number of seconds: '${v}'`);
  return Number(v);
}

// util.parseArgs refuses `--ttl -60` (a value that starts with a dash): glue each value option to the
// argument that follows it, `--ttl=-60`, as a shell user would expect
export function glueOptionValues(args, options) {
  const takesValue = new Set(Object.entries(options).filter(([, o]) => o.type === 'string').map(([k]) => `--${k}`));
  const out = [];
  for (let i = 0; i < args.length; i += 1) {
    if (takesValue.has(args[i]) && i + 1 < args.length) {
      out.push(`${args[i]}=${args[i + 1]}`);
      i += 1;
    } else {
      out.push(args[i]);
    }
  }
  return out;
}

function checkShape(s) {
  if (typeof s.aud !== 'string' || s.aud === '') throw new Error('aud must not be empty');
  if (!ALGS.includes(s.alg)) throw new Error(`alg must be one of ${ALGS.join(', ')}: '${s.alg}'`);
  if (!Number.isSafeInteger(s.ttl) || Math.abs(s.ttl) > MAX_TTL) throw new Error(`bad ttl: '${s.ttl}'`);
  if (s.sub !== undefined && (typeof s.sub !== 'string' || s.sub === '')) throw new Error('sub must not be empty');
  return s;
}

function dropUndefined(o) {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}
