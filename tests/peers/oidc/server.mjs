// One OpenID provider instance for gatehouse's end-to-end tests: oidc-provider 9 on 127.0.0.1:PORT, issuer
// http://127.0.0.1:PORT (https://… with --tls). start.sh runs it; see README.md (section "OpenID provider")
// for what it offers.
//
//   node server.mjs --name NAME --port PORT --keys KEYFILE --pidfile PIDFILE [--tls DIR]
//
// - --tls DIR: serves HTTPS with the certificate DIR/server.pem and its key DIR/server.key (common.sh's
//   make_tls makes them), and the issuer is https://127.0.0.1:PORT. The provider sees the requests as
//   secure (the socket is TLS), so it needs no `proxy` setting.
// - Signing keys come from KEYFILE (keys.mjs writes it): one RS256 and one ES256 key, both in the JWKS.
// - Browser logins (authorization code flow, login and consent pages, users and clients): logins.mjs.
// - The token client is gatehouse-e2e (shape.mjs), grant type client_credentials. Its access tokens are JWTs
//   signed by the provider with the key of the alg that the resource indicator asks for (shape.mjs), with
//   aud, exp, sub as asked, nbf = iat, and a `scopes` claim: the granted scope values as a JSON array.
// - One line per request, and one per token issued, on stdout (start.sh sends it to the instance's log).
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import crypto from 'node:crypto';
import { parseArgs } from 'node:util';
import Provider, { errors } from 'oidc-provider';
import { CLIENT_ID, CLIENT_SECRET, RESOURCE_BASE, decodeResource } from './shape.mjs';
import { readKeySet } from './keys.mjs';
import { LOGIN_CLIENTS, interaction, isLoginClient, loginConfiguration } from './logins.mjs';

const { values: opt } = parseArgs({
  options: {
    name: { type: 'string' },
    port: { type: 'string' },
    keys: { type: 'string' },
    pidfile: { type: 'string' },
    tls: { type: 'string' },
  },
});
for (const k of ['name', 'port', 'keys', 'pidfile']) {
  if (!opt[k]) {
    console.error(`usage: node server.mjs --name NAME --port PORT --keys KEYFILE --pidfile PIDFILE [--tls DIR] (missing --${k})`);
    process.exit(2);
  }
}
const PORT = Number(opt.port);
const ISSUER = `${opt.tls ? 'https' : 'http'}://127.0.0.1:${PORT}`;
const log = (msg) => console.log(`${new Date().toISOString()} [${opt.name}] ${msg}`);

let tlsOptions;
if (opt.tls) {
  try {
    tlsOptions = {
      cert: fs.readFileSync(path.join(opt.tls, 'server.pem')),
      key: fs.readFileSync(path.join(opt.tls, 'server.key')),
    };
  } catch (e) {
    log(`cannot read the server certificate: ${e.message}`);
    process.exit(1);
  }
}

const jwks = readKeySet(opt.keys);
const kidOf = Object.fromEntries(jwks.keys.map((k) => [k.alg, k.kid]));

// The token's shape, from the resource indicator that the token was issued for
const shapeOf = (token) => decodeResource(token.resourceServer?.identifier() ?? RESOURCE_BASE);

const configuration = {
  ...loginConfiguration,
  jwks,
  clients: [...LOGIN_CLIENTS, {
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // a client_credentials request without a resource indicator gets a token with all the defaults
      // (browser logins get opaque access tokens for userinfo: no resource)
      defaultResource: (ctx, client) => (isLoginClient(client) ? undefined : RESOURCE_BASE),
      useGrantedResource: (ctx) => !isLoginClient(ctx.oidc.client),
      getResourceServerInfo(ctx, indicator) {
        let shape;
        try {
          shape = decodeResource(indicator);
        } catch (e) {
          throw new errors.InvalidTarget(e.message);
        }
        return {
          // every scope value the client asks for is granted: the harness has no policy of its own
          scope: ctx?.oidc?.params?.scope ?? '',
          audience: shape.aud,
          // the provider needs a positive lifetime; ttl <= 0 is applied in the jwt customizer below
          accessTokenTTL: Math.max(shape.ttl, 1),
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: shape.alg } },
        };
      },
    },
  },
  ttl: {
    ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? 3600,
  },
  extraTokenClaims(ctx, token) {
    return { scopes: token.scope ? token.scope.split(' ') : [] };
  },
  formats: {
    customizers: {
      jwt(ctx, token, jwt) {
        const shape = shapeOf(token);
        const p = jwt.payload;
        if (shape.sub !== undefined) p.sub = shape.sub;
        p.nbf = p.iat;
        if (shape.ttl < 1) p.exp = p.iat + shape.ttl;
        log(`token jti=${p.jti} alg=${shape.alg} kid=${kidOf[shape.alg]} sub=${JSON.stringify(p.sub)} `
          + `aud=${JSON.stringify(p.aud)} ttl=${p.exp - p.iat} scopes=${JSON.stringify(p.scopes)}`);
      },
    },
  },
  // lets start.sh tell this instance from another one that was given the same port
  discovery: { gatehouse_test_instance: opt.name },
};

const provider = new Provider(ISSUER, configuration);
provider.on('server_error', (ctx, err) => log(`server_error: ${err.stack || err}`));
provider.on('grant.error', (ctx, err) => log(`grant.error: ${err.message} ${err.error_description ?? ''}`));

const callback = provider.callback();
const handler = (req, res) => {
  const t0 = process.hrtime.bigint();
  res.on('finish', () => {
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    log(`${req.method} ${req.url.split('?')[0]} ${res.statusCode} ${ms.toFixed(1)}ms`);
  });
  interaction(provider, req, res, log).then((handled) => { if (!handled) callback(req, res); });
};
const server = tlsOptions ? https.createServer(tlsOptions, handler) : http.createServer(handler);
// a client that does not trust the certificate: one line, not a server error
server.on('tlsClientError', (e, socket) => {
  log(`TLS handshake failed: ${e.code ?? ''} ${e.message}`);
  socket.destroy();
});

server.on('error', (e) => {
  log(`cannot listen on ${ISSUER}: ${e.message}`);
  process.exit(1);
});

server.listen(PORT, '127.0.0.1', () => {
  fs.writeFileSync(opt.pidfile, `${process.pid}\n`);
  log(`oidc-provider up: issuer ${ISSUER}, kids RS256 ${kidOf.RS256} ES256 ${kidOf.ES256}, pid ${process.pid}, node ${process.version}`);
});

const shutdown = (sig) => {
  log(`${sig}: stopping`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
