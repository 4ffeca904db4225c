// Browser logins on every provider instance (server.mjs): the authorization code flow for the `oidc`
// authenticator's end-to-end tests, with users, clients, a login page and a consent page.
//
// Users (login / password):  alice / alicepass,  Bob.Smith / bobpass,  juergen / jürgenpass
// Clients (every one with redirect_uri REDIRECT_URI, response type code):
//   gh-web     / gh-web-secret     client_secret_basic
//   gh-post    / gh-post-secret    client_secret_post
//   gh-public  (no secret)         token_endpoint_auth_method none, PKCE S256 required
//   gh-keycloak / gh-keycloak-secret, gh-google / gh-google-secret, gh-azure / gh-azure-secret:
//              client_secret_basic; their tokens carry the claim shapes of Keycloak, Google and Azure AD
//              (see claimsFor) so that the presets' mappings are tested with real signed tokens.
// Pages: GET /interaction/UID is the login form (prompt login) or the consent form (prompt consent);
// POST /interaction/UID/login {login, password}, POST /interaction/UID/confirm, GET /interaction/UID/abort
// (the user declines: the client gets error=access_denied).
import { errors } from 'oidc-provider';

export const REDIRECT_URI = 'https://app.example.test/cb';

const web = (id, method = 'client_secret_basic') => ({
  client_id: id,
  ...(method === 'none' ? {} : { client_secret: `${id}-secret` }),
  redirect_uris: [REDIRECT_URI],
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: method,
});

export const LOGIN_CLIENTS = [
  web('gh-web'),
  web('gh-post', 'client_secret_post'),
  web('gh-public', 'none'),
  web('gh-keycloak'),
  web('gh-google'),
  web('gh-azure'),
];

export const isLoginClient = (client) => Boolean(client?.clientId?.startsWith('gh-'));

const USERS = {
  alice: {
    password: 'alicepass',
    claims: {
      name: 'Alice Anderson', preferred_username: 'alice', given_name: 'Alice', family_name: 'Anderson',
      email: 'alice@example.test', email_verified: true, groups: ['admins', 'developers'],
    },
  },
  'Bob.Smith': {
    password: 'bobpass',
    claims: {
      name: 'Bob Smith', preferred_username: 'Bob.Smith', given_name: 'Bob', family_name: 'Smith',
      email: 'Bob.Smith@example.test', email_verified: false, groups: ['developers', 'operators'],
    },
  },
  juergen: {
    password: 'jürgenpass',
    claims: {
      name: 'Jürgen Müller', preferred_username: 'juergen', given_name: 'Jürgen', family_name: 'Müller',
      email: 'juergen@example.test', email_verified: true, groups: ['all-staff'],
    },
  },
};

// Azure AD group object ids per user; juergen is in too many groups: the overage claim instead
const AZURE_GROUPS = {
  alice: ['6f1c2b9e-0d6a-4f7e-9a51-2c8e6b3d4a10', 'b2a7e4c1-8f3d-4e2a-a6c9-1d5f7e9b0c32'],
  'Bob.Smith': ['b2a7e4c1-8f3d-4e2a-a6c9-1d5f7e9b0c32'],
};
const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';

// The claims of `login` as the client's kind of provider would send them.
function claimsFor(clientId, login) {
  const c = { ...USERS[login].claims };
  switch (clientId) {
    case 'gh-keycloak':
      // Keycloak: group mapper with full paths, realm roles
      return { ...c, groups: c.groups.map((g) => `/${g}`), realm_access: { roles: ['offline_access', `role-${login}`] } };
    case 'gh-google': {
      // Google: hd only for Workspace accounts; Bob has a consumer account; no groups
      const hd = { alice: 'example.test', juergen: 'other.test' }[login];
      const { groups, preferred_username, ...rest } = c;
      return { ...rest, email_verified: true, ...(hd ? { hd } : {}) };
    }
    case 'gh-azure': {
      const { groups, preferred_username, ...rest } = c;
      const upn = `${login.toLowerCase()}@contoso.example`;
      const out = { ...rest, upn, preferred_username: upn, tid: TENANT, oid: `0000-${login}` };
      if (AZURE_GROUPS[login]) return { ...out, groups: AZURE_GROUPS[login] };
      return {
        ...out,
        _claim_names: { groups: 'src1' },
        _claim_sources: { src1: { endpoint: `https://graph.microsoft.com/v1.0/users/0000-${login}/getMemberObjects` } },
      };
    }
    default:
      return c;
  }
}

// provider configuration for the logins (merged into server.mjs's)
export const loginConfiguration = {
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username', 'given_name', 'family_name', 'hd', 'upn', 'tid', 'oid', 'realm_access',
      'locale'],
    groups: ['groups'],
  },
  // the scope claims in the ID token too, as Keycloak, Google and Azure AD put them there
  conformIdTokenClaims: false,
  pkce: { required: (ctx, client) => client.clientAuthMethod === 'none' },
  async findAccount(ctx, sub) {
    if (!Object.prototype.hasOwnProperty.call(USERS, sub)) return undefined;
    return {
      accountId: sub,
      // `locale` only in userinfo answers: shows that userinfo was merged
      async claims(use) {
        const extra = use === 'userinfo' ? { locale: 'en-GB' } : {};
        return { sub, ...claimsFor(ctx.oidc.client?.clientId, sub), ...extra };
      },
    };
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
};

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!doctype html><html><head><title>${esc(title)}</title></head><body>
<h1>${esc(title)}</h1>${body}</body></html>`;
const loginPage = (uid, err) => page('Sign in', `${err ? `<p class="error">${esc(err)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}/login">
<input name="login" autocomplete="username"><input name="password" type="password">
<button type="submit">Sign in</button></form>
<a href="/interaction/${esc(uid)}/abort">Cancel</a>`);
const consentPage = (uid, client, scopes) => page('Authorize', `<p>${esc(client)} asks for: ${esc(scopes)}</p>
<form method="post" action="/interaction/${esc(uid)}/confirm"><button type="submit">Allow</button></form>
<a href="/interaction/${esc(uid)}/abort">Deny</a>`);

const readForm = (req) => new Promise((resolve, reject) => {
  let b = '';
  req.setEncoding('utf8');
  req.on('data', (c) => { b += c; if (b.length > 65536) req.destroy(); });
  req.on('end', () => resolve(new URLSearchParams(b)));
  req.on('error', reject);
});

const html = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(body);
};

// handles /interaction/… (true) or leaves the request to the provider (false)
export async function interaction(provider, req, res, log) {
  const m = /^\/interaction\/([^/?]+)(?:\/(login|confirm|abort))?(?:\?.*)?$/.exec(req.url);
  if (!m) return false;
  const [, uid, action] = m;
  try {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) throw new Error('interaction mismatch');
    const { prompt, params } = details;
    if (!action && req.method === 'GET') {
      if (prompt.name === 'login') return html(res, 200, loginPage(uid)), true;
      return html(res, 200, consentPage(uid, params.client_id, params.scope)), true;
    }
    if (action === 'login' && req.method === 'POST') {
      const form = await readForm(req);
      const login = form.get('login') || '';
      const u = Object.prototype.hasOwnProperty.call(USERS, login) ? USERS[login] : null;
      if (!u || u.password !== (form.get('password') || '')) {
        log(`login failed for ${JSON.stringify(login)}`);
        return html(res, 401, loginPage(uid, 'Invalid username or password')), true;
      }
      log(`login ok for ${JSON.stringify(login)}`);
      await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
      return true;
    }
    if (action === 'confirm' && req.method === 'POST') {
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
      const missing = prompt.details.missingOIDCScope;
      if (missing) grant.addOIDCScope(missing.join(' '));
      const claims = prompt.details.missingOIDCClaims;
      if (claims) grant.addOIDCClaims(claims);
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
      return true;
    }
    if (action === 'abort') {
      await provider.interactionFinished(req, res, {
        error: 'access_denied', error_description: 'The user declined',
      }, { mergeWithLastSubmission: false });
      return true;
    }
    html(res, 404, page('Not found', ''));
  } catch (e) {
    log(`interaction error: ${e.message}`);
    if (!res.headersSent) html(res, e instanceof errors.OIDCProviderError ? e.statusCode : 400, page('Error', esc(e.message)));
    else res.end();
  }
  return true;
}
