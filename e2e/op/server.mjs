// A real OpenID Provider for trustgate's end-to-end tests: panva/oidc-provider (OpenID
// Certified) with its built-in development login and consent pages. Loopback only.
//
// Environment:
//   OP_PORT        port to listen on at 127.0.0.1 (issuer http://127.0.0.1:OP_PORT)
//   OP_CLIENTS     JSON array of client registrations (see clients() below for the shape)
//
// Test controls (loopback only): POST /test/ciba/{approve,deny}?login_hint=… answers a
// pending CIBA request; GET /test/authorizations?client_id=… lists the authorization
// requests the provider received for that client (their parameters, oldest first);
// GET /test/grants?client_id=… lists the token endpoint's answers to that client (grant
// type, grant id, whether a refresh token was rotated, the error if any; oldest first);
// GET /test/backchannel-logouts?client_id=… lists the back-channel logout requests the
// provider sent to that client and how they ended; GET /test/tokens?client_id=… lists the
// tokens issued to that client (access, ID and refresh tokens, signed userinfo);
// GET /test/extra-params?client_id=… lists the provider-specific authorization parameters
// (hd, domain_hint) the provider accepted from that client.
//
// BankID-style userinfo (shared/seeds/003): a client entry with userinfo_signed_response_alg
// may also carry userinfo_issuer: its signed userinfo is then re-signed (same RS256 key and
// kid, from the published JWKS) with that "iss" instead of the OP's issuer, as BankID's
// separate "UserInfo API" issues it (see resignUserinfo). userinfo_signing_key
// "unpublished" signs it instead with a key that is not in the JWKS, under the published
// kid: a forged userinfo.
//
// Bearer tokens for APIs: a client entry with client_credentials may also use that grant;
// with resource=https://api.example.test (or https://other-api.example.test) it gets an RFC
// 9068 JWT access token for that audience (see resourceServers).
//
// Session lifecycle: a client entry may also carry access_token_ttl (seconds; default 300)
// and rotate_refresh_token (a refresh grant consumes the presented refresh token and
// issues a new one; a spent one presented again is invalid_grant and revokes the grant).
// Refresh tokens are issued to every client with the refresh_token grant type (see
// issueRefreshToken). Back-channel logout is sent when the user signs out at the provider
// (its end-session page, GET /session/end, "Yes, sign me out"), to every client of that
// provider session registered with backchannel_logout_uri.
//
// Bank-grade clients (FAPI): a client entry may carry dpop_bound_access_tokens (its access
// tokens must be DPoP-bound; the provider requires a server nonce in every DPoP proof, so
// the client's use_dpop_nonce retry runs on every first call), or token_endpoint_auth_method
// tls_client_auth with tls_client_auth_subject_dn (mutual TLS, certificate-bound tokens).
// Mutual TLS needs OP_MTLS_PORT, OP_TLS_CERT, OP_TLS_KEY and OP_TLS_CA (PEM files): the
// provider then also listens with TLS on that port, asks for a client certificate from that
// CA, and publishes the port's endpoints as mtls_endpoint_aliases (RFC 8705 §5).
//
// On-path tampering (POST /test/tamper, JSON {client_id, mode, key}): the next token request
// of that client is altered before the provider reads it, as an attacker on the path or a
// skewed clock would alter it, and the provider judges the result as it judges any request.
// Modes: expired_assertion and assertion_wrong_aud re-sign the client assertion (ES256, with
// key, the client's private JWK) with exp in the past or another aud; replay_assertion
// sends the previous assertion of that client again (its jti reused); dpop_other_url sends
// the DPoP proof the client made for its pushed authorization request instead.
//
// Users carry claims built from the provider documents in shared/seeds/: a BindID user with
// alias and the full trust profile (000), the same without alias (a new user), and two
// BankID-style users (003), the second with a non-ASCII name and address. acr/amr come
// with the login, as a real OP sets them.
//
// Step-up: a user logs in at its default acr; a user with `stepUp` entries can also reach
// those levels (each with its own amr). When the authorization request carries acr_values,
// the login gets the first requested level the user can reach, else the default one, as a
// real OP that cannot perform the requested method does. prompt=login and max_age are
// oidc-provider's own: they show the login page again even with a live OP session.
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, verify, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHTTPSServer } from 'node:https';
import Provider, { errors } from 'oidc-provider';

const port = Number(process.env.OP_PORT || 0);
const issuer = `http://127.0.0.1:${port}`;

const bindidInfo = {
  capp_first_login_from_authenticating_device: 1605180500,
  authenticating_device: { browser_type: 'Mobile', os_type: 'iOS', os_version: '14.1', browser_version: 'Safari' },
  capp_last_login_from_authenticating_device: 1605180574,
  capp_last_login: 1605180577,
  capp_first_login: 1605180504,
  capp_first_confirmed_login: 1605180577,
  originating_device: { browser_type: 'Chrome', os_type: 'Mac OS', os_version: '10.15.7', browser_version: '86.0.4240.183' },
};
const bindidNetworkInfo = {
  user_registration_time: 1605180498,
  authenticating_device_registration_time: 1605180500,
  authenticating_device_last_seen: 1605180691,
  user_last_seen: 1605180694,
  confirmed_capp_count: 1,
  device_count: 2,
};

// Login name (typed on the login page) -> account.
const users = {
  'bindid-known': {
    sub: '123e4567-e89b-12d3-a456-426652340000',
    acr: 'ts.bindid.iac.phone_number',
    amr: ['ts.bind_id.ama', 'ts.bind_id.mfca'],
    // This user also holds a BankID: asked for it, the login is a BankID login.
    stepUp: { 'urn:bankid:bid': ['bankid', 'ts.bind_id.ama'] },
    claims: {
      bindid_alias: 'username@domain',
      email: 'known@example.com', email_verified: true,
      phone_number: '+12125556789', phone_number_verified: true,
      bindid_info: bindidInfo, bindid_network_info: bindidNetworkInfo,
    },
  },
  // No BankID: cannot reach urn:bankid:bid, whatever the client asks for.
  'bindid-new': {
    sub: '123e4567-e89b-12d3-a456-426652340001',
    acr: 'ts.bindid.iac.phone_number',
    amr: ['ts.bind_id.ama'],
    claims: {
      email: 'new@example.com', email_verified: false,
      phone_number: '+12125550000', phone_number_verified: true,
      bindid_info: bindidInfo, bindid_network_info: bindidNetworkInfo,
    },
  },
  ola: {
    sub: '9578-6000-4-00001',
    acr: 'urn:bankid:bid',
    amr: ['BID'],
    claims: {
      name: 'Ola Normann', given_name: 'Ola', family_name: 'Normann',
      email: 'normann@example.org', birthdate: '110286', phone_number: '95871775',
      address: { formatted: 'Veien 311\nOslo 0772', street_address: 'Veien 311', locality: '0772', postal_code: 'Oslo' },
    },
  },
  // A second BankID-style user with a non-ASCII name and address (the address object has
  // the seed's shape).
  ase: {
    sub: '9578-6000-4-00002',
    acr: 'urn:bankid:bid',
    amr: ['BID'],
    claims: {
      name: 'Åse Øvrebø', given_name: 'Åse', family_name: 'Øvrebø',
      email: 'ase@example.org', birthdate: '030391', phone_number: '95871776',
      address: { formatted: 'Bjørnstjerne Bjørnsons gate 2\nTromsø 9008', street_address: 'Bjørnstjerne Bjørnsons gate 2', locality: '9008', postal_code: 'Tromsø' },
    },
  },
};
// Recipe users (docs/providers.md, e2e/recipes_test.go): the claim shapes of Microsoft Entra
// ID (preferred_username, app roles in `roles`, tid, an e-mail without email_verified),
// Google (hd for a Workspace account, email_verified true), Keycloak (realm_access.roles)
// and Auth0 (a namespaced roles claim). roles, tid, hd, realm_access and the namespaced
// claim are openid-scope claims here, so they are in the ID token as those providers send
// them.
const recipeUsers = {
  'entra-admin': {
    sub: 'entra-sub-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1',
    acr: 'ts.bindid.iac.phone_number', amr: ['pwd', 'mfa'],
    claims: {
      preferred_username: 'ada@example.com', name: 'Ada Admin', email: 'ada@example.com',
      roles: ['Gateway.Admin', 'Gateway.Reader'], tid: '11111111-2222-3333-4444-555555555555',
    },
  },
  'entra-reader': {
    sub: 'entra-sub-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA2',
    acr: 'ts.bindid.iac.phone_number', amr: ['pwd'],
    claims: {
      preferred_username: 'rob@example.com', name: 'Rob Reader', email: 'rob@example.com',
      roles: ['Gateway.Reader'], tid: '11111111-2222-3333-4444-555555555555',
    },
  },
  'google-workspace': {
    sub: '109876543210987654321',
    acr: 'ts.bindid.iac.phone_number', amr: ['pwd'],
    claims: { email: 'grace@example.com', email_verified: true, hd: 'example.com', name: 'Grace Hopper' },
  },
  'google-consumer': {
    sub: '109876543210987654322',
    acr: 'ts.bindid.iac.phone_number', amr: ['pwd'],
    claims: { email: 'someone@gmail.com', email_verified: true, name: 'Some One' },
  },
  // Keycloak: realm roles in realm_access.roles (the "realm roles" mapper with Add to ID
  // token on), groups by the Group Membership mapper without full path.
  'keycloak-admin': {
    sub: 'f1e2d3c4-0000-4000-8000-00000000c001',
    acr: 'ts.bindid.iac.phone_number', amr: ['pwd'],
    claims: {
      preferred_username: 'kc-admin', email: 'kc-admin@example.com', email_verified: true,
      realm_access: { roles: ['admin', 'offline_access', 'uma_authorization'] }, groups: ['finance'],
    },
  },
  'keycloak-user': {
    sub: 'f1e2d3c4-0000-4000-8000-00000000c002',
    acr: 'ts.bindid.iac.phone_number', amr: ['pwd'],
    claims: {
      preferred_username: 'kc-user', email: 'kc-user@example.com', email_verified: true,
      realm_access: { roles: ['offline_access', 'uma_authorization'] }, groups: [],
    },
  },
  // Auth0: roles in a namespaced custom claim (a name with dots), set by a post-login Action.
  'auth0-admin': {
    sub: 'auth0|6543210fedcba98765432101',
    acr: 'ts.bindid.iac.phone_number', amr: ['pwd'],
    claims: { email: 'eve@example.com', email_verified: true, nickname: 'eve', 'https://example.com/roles': ['admin'] },
  },
};
Object.assign(users, recipeUsers);
const bySub = Object.fromEntries(Object.values(users).map((u) => [u.sub, u]));
const account = (id) => users[id] || bySub[id];

// How user u authenticates when the client asked for acrValues (space-separated, may be
// empty): the first requested level u can reach, else u's default level.
function authentication(u, acrValues) {
  for (const acr of (acrValues || '').split(' ')) {
    if (acr === u.acr) return { acr, amr: u.amr };
    if (u.stepUp?.[acr]) return { acr, amr: u.stepUp[acr] };
  }
  return { acr: u.acr, amr: u.amr };
}

const clientEntries = JSON.parse(process.env.OP_CLIENTS || '[]');

// The provider-side options of a client entry that are not client metadata.
const clientOptions = new Map(clientEntries.map((c) => [c.client_id, {
  accessTokenTTL: c.access_token_ttl || 300,
  rotateRefreshToken: Boolean(c.rotate_refresh_token),
  userinfoIssuer: c.userinfo_issuer || '',
  userinfoUnpublishedKey: c.userinfo_signing_key === 'unpublished',
}]));
const optionsFor = (clientId) => clientOptions.get(clientId) || { accessTokenTTL: 300, rotateRefreshToken: false };

function clients() {
  return clientEntries.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    redirect_uris: c.redirect_uris,
    post_logout_redirect_uris: c.post_logout_redirect_uris || [],
    grant_types: ['authorization_code', 'refresh_token', 'urn:openid:params:grant-type:ciba', ...(c.client_credentials ? ['client_credentials'] : [])],
    response_types: ['code'],
    token_endpoint_auth_method: c.token_endpoint_auth_method || 'client_secret_basic',
    ...(c.jwks ? { jwks: c.jwks } : {}),
    ...(c.require_pushed_authorization_requests ? { require_pushed_authorization_requests: true } : {}),
    ...(c.require_signed_request_object ? {
      require_signed_request_object: true, request_object_signing_alg: 'ES256', backchannel_authentication_request_signing_alg: 'ES256',
    } : {}),
    backchannel_token_delivery_mode: 'poll',
    ...(c.backchannel_logout_uri ? { backchannel_logout_uri: c.backchannel_logout_uri, backchannel_logout_session_required: true } : {}),
    ...(c.userinfo_signed_response_alg ? { userinfo_signed_response_alg: c.userinfo_signed_response_alg } : {}),
    ...(c.dpop_bound_access_tokens ? { dpop_bound_access_tokens: true } : {}),
    ...(c.id_token_signed_response_alg ? { id_token_signed_response_alg: c.id_token_signed_response_alg } : {}),
    ...(c.tls_client_auth_subject_dn ? { tls_client_auth_subject_dn: c.tls_client_auth_subject_dn, tls_client_certificate_bound_access_tokens: true } : {}),
  }));
}

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: `rs-${randomBytes(4).toString('hex')}`, use: 'sig', alg: 'RS256' };
// FAPI 2.0 allows PS256, ES256 or EdDSA only: clients with id_token_signed_response_alg
// ES256 (the FAPI client) get ID tokens signed with this key.
const { privateKey: ecPrivateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ecSigningKey = { ...ecPrivateKey.export({ format: 'jwk' }), kid: `es-${randomBytes(4).toString('hex')}`, use: 'sig', alg: 'ES256' };
// Never published: signs the forged userinfo of a client with userinfo_signing_key
// "unpublished".
const { privateKey: unpublishedKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });

// Extra authorization parameters the provider accepted (see extraParams).
const acceptedExtraParams = [];

// CIBA requests waiting for the test to approve or deny them (POST /test/ciba/{approve,deny}).
const pendingCIBA = new Map();

// Resource servers (RFC 8707 resource indicators): a token requested with resource=<one of
// these> is an RFC 9068 JWT access token (typ at+jwt, RS256 with the provider's key) for that
// audience, carrying the requested scopes the resource server knows. apiAudience is the API
// of the gateway's bearer site (e2e/bearer_test.go); otherAudience is another API, whose
// tokens that site must refuse. Any other resource is invalid_target.
// opaqueAudience is an API whose tokens are opaque (not JWTs): the gateway can only judge
// them by asking the provider's introspection endpoint (RFC 7662).
const apiAudience = 'https://api.example.test';
const otherAudience = 'https://other-api.example.test';
const opaqueAudience = 'https://opaque-api.example.test';
const resourceServers = new Map([apiAudience, otherAudience].map((audience) => [audience, {
  scope: 'items:read items:write',
  audience,
  accessTokenFormat: 'jwt',
  jwt: { sign: { alg: 'RS256' } },
}]));
resourceServers.set(opaqueAudience, { scope: 'items:read items:write', audience: opaqueAudience, accessTokenFormat: 'opaque' });

const configuration = {
  clients: clients(),
  jwks: { keys: [signingKey, ecSigningKey] },
  clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'client_secret_jwt', 'private_key_jwt', 'tls_client_auth', 'none'],
  cookies: { keys: [randomBytes(32).toString('hex')] },
  findAccount: async (ctx, id) => {
    const u = account(id);
    if (!u) return undefined;
    return {
      accountId: u.sub,
      claims: async () => ({ sub: u.sub, ...u.claims }),
    };
  },
  // acr, amr and auth_time under openid: like the BindID and BankID providers of the seeds,
  // every ID token says how the user authenticated, without the client asking for it.
  claims: {
    openid: ['sub', 'acr', 'amr', 'auth_time', 'roles', 'tid', 'hd', 'realm_access', 'https://example.com/roles'],
    email: ['email', 'email_verified'],
    phone: ['phone_number', 'phone_number_verified'],
    profile: ['name', 'given_name', 'family_name', 'birthdate', 'preferred_username', 'nickname'],
    address: ['address'],
    bindid: ['bindid_alias', 'bindid_info', 'bindid_network_info'],
  },
  scopes: ['openid', 'offline_access', 'email', 'phone', 'profile', 'address', 'bindid'],
  acrValues: ['ts.bindid.iac.phone_number', 'urn:bankid:bid'],
  // Provider-specific authorization parameters (the gateway's auth_params): Google's hd and
  // Entra's domain_hint. oidc-provider drops parameters it does not know; these it keeps,
  // and each one it accepted is recorded (GET /test/extra-params?client_id=…).
  extraParams: Object.fromEntries(['hd', 'domain_hint'].map((name) => [name, async (ctx, value, client) => {
    if (value === undefined) return;
    acceptedExtraParams.push({ client_id: client.clientId, name, value });
    console.log(`extra param client_id=${client.clientId} ${name}=${value}`);
  }])),
  pkce: { required: () => true },
  // Refresh tokens for every code-flow client, not only with offline_access + prompt=consent
  // (oidc-provider's default): the gateway asks for no offline_access. Such a refresh token
  // expires with the provider session, so signing out at the provider also ends refreshes.
  issueRefreshToken: async (ctx, client, code) => client.grantTypeAllowed('refresh_token'),
  // Rotation where the client entry asks for it (rotate_refresh_token). oidc-provider's
  // default rotates a confidential client's token only past 70% of its life.
  rotateRefreshToken: (ctx) => optionsFor(ctx.oidc.client.clientId).rotateRefreshToken,
  features: {
    devInteractions: { enabled: true },
    claimsParameter: { enabled: true },
    jwtUserinfo: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
    // Machine clients (client entries with client_credentials: true) get JWT access tokens
    // for the resource servers above: grant_type=client_credentials&resource=…&scope=….
    // Signed request objects (JAR): clients registered with require_signed_request_object.
    requestObjects: { enabled: true },
    clientCredentials: { enabled: true },
    // RFC 7662 introspection (any authenticated confidential client may ask, oidc-provider's
    // default policy) and RFC 7009 revocation, for the opaque tokens of opaqueAudience.
    introspection: { enabled: true },
    revocation: { enabled: true },
    // DPoP with server nonces, always required: every client's first proof is answered
    // use_dpop_nonce.
    dPoP: { enabled: true, nonceSecret: randomBytes(32), requireNonce: () => true },
    // Mutual TLS (RFC 8705) on the TLS listener: the client certificate of the connection,
    // verified against OP_TLS_CA by Node's TLS, its subject compared with the registration.
    mTLS: {
      enabled: true,
      certificateBoundAccessTokens: true,
      tlsClientAuth: true,
      getCertificate: (ctx) => {
        const peer = ctx.socket.getPeerCertificate?.();
        return peer?.raw ? new X509Certificate(peer.raw).toString() : undefined;
      },
      certificateAuthorized: (ctx) => Boolean(ctx.socket.authorized),
      certificateSubjectMatches: (ctx, property, expected) => {
        if (property !== 'tls_client_auth_subject_dn') return false;
        const peer = ctx.socket.getPeerCertificate?.();
        return Boolean(peer?.subject) && `CN=${peer.subject.CN}` === expected;
      },
    },
    resourceIndicators: {
      enabled: true,
      getResourceServerInfo: async (ctx, resourceIndicator) => {
        const info = resourceServers.get(resourceIndicator);
        if (!info) throw new errors.InvalidTarget();
        return info;
      },
    },
    ciba: {
      enabled: true,
      deliveryModes: ['poll'],
      processLoginHint: async (ctx, hint) => account(hint)?.sub,
      validateBindingMessage: async () => {},
      validateRequestContext: async () => {},
      verifyUserCode: async () => {},
      triggerAuthenticationDevice: async (ctx, request, acct) => {
        pendingCIBA.set(request.jti, { request, accountId: acct.accountId });
      },
    },
  },
  // oidc-provider refuses outgoing requests to loopback and private addresses (SSRF
  // protection); in these loopback-only tests the back-channel logout receiver is on
  // 127.0.0.1, so drop the guarding dispatcher.
  fetch: (url, options) => {
    const { dispatcher, ...rest } = options;
    return globalThis.fetch(url, rest);
  },
  ttl: {
    // Per client (access_token_ttl): short-lived access tokens make the gateway refresh
    // within seconds.
    AccessToken: (ctx, token, client) => optionsFor(client?.clientId).accessTokenTTL,
    IdToken: 300, AuthorizationCode: 60, Interaction: 600, Session: 3600,
    Grant: 3600, RefreshToken: 3600, BackchannelAuthenticationRequest: 120,
  },
};

const provider = new Provider(issuer, configuration);

// The development login page only submits an account id; a real OP records how the user
// authenticated. Add acr and amr to the login result, from the seed user and the request's
// acr_values (see authentication()), keeping the built-in pages.
const finish = provider.interactionFinished.bind(provider);
provider.interactionFinished = async (req, res, result, options) => {
  if (result?.login?.accountId) {
    const u = account(result.login.accountId);
    if (u) {
      const { params } = await provider.interactionDetails(req, res);
      const { acr, amr } = authentication(u, params.acr_values);
      result.login = { ...result.login, accountId: u.sub, acr, amr };
      console.log(`login ${u.sub} acr=${acr} amr=${amr.join(',')} (acr_values=${params.acr_values ?? ''})`);
    }
  }
  return finish(req, res, result, options);
};

// Every GET authorization request as received (before any redirect to the login page), so a
// test can check what the gateway asked for and how often.
const authorizations = [];
provider.use(async (ctx, next) => {
  if (ctx.path === '/auth' && ctx.method === 'GET') {
    const params = { ...ctx.query };
    authorizations.push(params);
    console.log(`authorize client_id=${params.client_id} prompt=${params.prompt ?? ''} acr_values=${params.acr_values ?? ''} max_age=${params.max_age ?? ''}`);
  }
  if (ctx.path === '/test/authorizations' && ctx.method === 'GET') {
    ctx.body = authorizations.filter((a) => a.client_id === ctx.query.client_id);
    return;
  }
  return next();
});

// Test controls for CIBA (loopback only, like everything here).
provider.use(async (ctx, next) => {
  const m = /^\/test\/ciba\/(approve|deny)$/.exec(ctx.path);
  if (!m || ctx.method !== 'POST') return next();
  const loginHint = ctx.query.login_hint;
  const entry = [...pendingCIBA.entries()].find(([, v]) => account(loginHint)?.sub === v.accountId);
  if (!entry) { ctx.status = 404; ctx.body = { error: 'no pending request for that login_hint' }; return; }
  const [jti, { request, accountId }] = entry;
  pendingCIBA.delete(jti);
  if (m[1] === 'deny') {
    await provider.backchannelResult(request, new errors.AccessDenied('denied by the test'));
  } else {
    const grant = new provider.Grant({ accountId, clientId: request.clientId });
    grant.addOIDCScope(request.scope);
    await grant.save();
    await provider.backchannelResult(request, grant, { acr: account(accountId).acr, amr: account(accountId).amr });
  }
  ctx.status = 204;
});

// BankID's userinfo is a JWT issued by its separate UserInfo API, with that API's "iss"
// (seed 003); oidc-provider signs userinfo with its own issuer. For a client entry with
// userinfo_issuer, take the signed userinfo oidc-provider produced (its claims, aud, exp,
// the scopes' filtering) and sign the same claims again, RS256 with the published key and
// kid, with iss = userinfo_issuer. With userinfo_signing_key "unpublished" the JWT is signed
// with a key outside the JWKS instead (a forgery under the published kid). Other clients'
// userinfo is left as oidc-provider made it.
const b64url = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
function resignUserinfo(jwt) {
  const [, body] = jwt.split('.');
  const claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
  const clientId = Array.isArray(claims.aud) ? claims.aud[0] : claims.aud;
  const { userinfoIssuer, userinfoUnpublishedKey } = optionsFor(clientId);
  if (!userinfoIssuer && !userinfoUnpublishedKey) return jwt;
  if (userinfoIssuer) claims.iss = userinfoIssuer;
  const input = `${b64url({ alg: 'RS256', typ: 'JWT', kid: signingKey.kid })}.${b64url(claims)}`;
  const key = userinfoUnpublishedKey ? unpublishedKey : privateKey;
  const signature = sign('sha256', Buffer.from(input), key); // RSASSA-PKCS1-v1_5: RS256
  console.log(`userinfo client_id=${clientId} re-signed iss=${claims.iss} key=${userinfoUnpublishedKey ? 'unpublished' : signingKey.kid}`);
  return `${input}.${signature.toString('base64url')}`;
}

// Signed userinfo goes through resignUserinfo. Every token the provider hands out is kept
// (token endpoint: access, ID and refresh tokens; userinfo: the signed JWT as sent), so a
// test can check that none of them reaches the gateway's log: GET /test/tokens?client_id=…
// lists them.
const issuedTokens = [];
provider.use(async (ctx, next) => {
  if (ctx.method === 'GET' && ctx.path === '/test/tokens') {
    ctx.body = issuedTokens.filter((t) => t.client_id === ctx.query.client_id);
    return;
  }
  await next();
  if (ctx.status !== 200) return;
  const clientId = ctx.oidc?.client?.clientId;
  if (ctx.path === '/token' && ctx.body && typeof ctx.body === 'object') {
    // bound: how the access token is sender-constrained (dpop: jkt, mtls: x5t#S256).
    const at = ctx.oidc.entities?.AccessToken;
    const bound = at?.jkt ? 'dpop' : (at?.['x5t#S256'] ? 'mtls' : '');
    for (const kind of ['access_token', 'id_token', 'refresh_token']) {
      if (typeof ctx.body[kind] === 'string') issuedTokens.push({ client_id: clientId, kind, value: ctx.body[kind], token_type: ctx.body.token_type, bound });
    }
  }
  if (ctx.path === '/me' && ctx.response.is('application/jwt') && typeof ctx.body === 'string') {
    ctx.body = resignUserinfo(ctx.body);
    issuedTokens.push({ client_id: clientId, kind: 'userinfo', value: ctx.body });
  }
});

// On-path tampering (see the top of this file): one pending mode per client, applied to its
// next token request. The last client assertion and the last PAR DPoP proof of each client
// are kept for replay_assertion and dpop_other_url.
const tamper = new Map();
const lastAssertion = new Map();
const parProof = new Map();
function resign(jwt, jwk, edit) {
  const [h, body] = jwt.split('.');
  const claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
  edit(claims);
  const input = `${h}.${b64url(claims)}`;
  const key = createPrivateKey({ key: jwk, format: 'jwk' });
  const signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  const ok = verify('sha256', Buffer.from(input), { key: createPublicKey(key), dsaEncoding: 'ieee-p1363' }, signature);
  console.log(`tamper re-signed ${JSON.stringify(claims)} with the key of x=${jwk.x} (self-check ${ok ? 'ok' : 'FAILED'})`);
  return `${input}.${signature.toString('base64url')}`;
}
async function readBody(ctx) {
  const chunks = [];
  for await (const chunk of ctx.req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}
provider.use(async (ctx, next) => {
  if (ctx.method === 'POST' && ctx.path === '/test/tamper') {
    const { client_id: clientId, mode, key } = JSON.parse(await readBody(ctx));
    tamper.set(clientId, { mode, key });
    ctx.status = 204;
    return;
  }
  const watched = ctx.method === 'POST' && (ctx.path === '/token' || ctx.path === '/request') && ctx.is('application/x-www-form-urlencoded');
  if (!watched) return next();
  const form = new URLSearchParams(await readBody(ctx));
  const clientId = form.get('client_id');
  if (ctx.path === '/request' && ctx.get('DPoP')) parProof.set(clientId, ctx.get('DPoP'));
  const t = ctx.path === '/token' ? tamper.get(clientId) : undefined;
  const assertion = form.get('client_assertion');
  if (t) {
    tamper.delete(clientId);
    const now = Math.floor(Date.now() / 1000);
    if (t.mode === 'expired_assertion') form.set('client_assertion', resign(assertion, t.key, (c) => { c.iat = now - 600; c.exp = now - 540; }));
    if (t.mode === 'assertion_wrong_aud') form.set('client_assertion', resign(assertion, t.key, (c) => { c.aud = 'https://wrong-audience.example'; }));
    if (t.mode === 'replay_assertion' && lastAssertion.has(clientId)) form.set('client_assertion', lastAssertion.get(clientId));
    if (t.mode === 'dpop_other_url' && parProof.has(clientId)) ctx.req.headers.dpop = parProof.get(clientId);
    console.log(`tamper client_id=${clientId} mode=${t.mode} path=${ctx.path}`);
  }
  if (assertion && !t) lastAssertion.set(clientId, assertion);
  ctx.request.body = Object.fromEntries(form);
  return next();
});

// Every answer of the token endpoint, so a test can count refresh grants per provider grant
// (one grant per login) and see that each presented refresh token was fresh.
const grants = [];
function recordGrant(ctx, err) {
  const oidc = ctx.oidc;
  const entities = oidc?.entities || {};
  const token = entities.RefreshToken || entities.AuthorizationCode || entities.BackchannelAuthenticationRequest;
  const g = {
    client_id: oidc?.client?.clientId,
    grant_type: oidc?.params?.grant_type,
    grant_id: token?.grantId,
    account_id: token?.accountId,
    rotated: Boolean(entities.RotatedRefreshToken),
    at: Date.now(),
    // error_detail is the provider's own reason, which it does not send to the client
    // (invalid_client says only "client authentication failed").
    ...(err ? { error: `${err.error || err.name}: ${err.error_description || err.message}`, error_detail: err.error_detail || '' } : {}),
  };
  grants.push(g);
  console.log(`grant ${g.grant_type} client_id=${g.client_id} grant_id=${g.grant_id ?? ''} rotated=${g.rotated}${g.error ? ` error=${g.error} (${g.error_detail})` : ''}`);
}
provider.on('grant.success', (ctx) => recordGrant(ctx));
provider.on('grant.error', (ctx, err) => recordGrant(ctx, err));

// Back-channel logout requests the provider sent (after its own end-session confirmation).
const backchannelLogouts = [];
provider.on('backchannel.success', (ctx, client, accountId, sid) => {
  backchannelLogouts.push({ client_id: client.clientId, account_id: accountId, sid, at: Date.now() });
  console.log(`backchannel logout client_id=${client.clientId} sid=${sid} ok`);
});
provider.on('backchannel.error', (ctx, err, client, accountId, sid) => {
  backchannelLogouts.push({ client_id: client.clientId, account_id: accountId, sid, at: Date.now(), error: err.message });
  console.log(`backchannel logout client_id=${client.clientId} sid=${sid} error=${err.message}`);
});
// Refused authorization and pushed requests, with the provider's reason (the page the
// browser sees only says what the user may read).
for (const event of ['authorization.error', 'pushed_authorization_request.error', 'backchannel_authentication.error']) {
  provider.on(event, (ctx, err) => console.log(`${event} client_id=${ctx.oidc?.client?.clientId ?? ''} error=${err.error}: ${err.error_description}`));
}
provider.on('end_session.success', (ctx) => console.log(`end session client_id=${ctx.oidc.client?.clientId ?? ''}`));

provider.use(async (ctx, next) => {
  if (ctx.method === 'GET' && ctx.path === '/test/grants') {
    ctx.body = grants.filter((g) => g.client_id === ctx.query.client_id);
    return;
  }
  if (ctx.method === 'GET' && ctx.path === '/test/extra-params') {
    ctx.body = acceptedExtraParams.filter((p) => p.client_id === ctx.query.client_id);
    return;
  }
  if (ctx.method === 'GET' && ctx.path === '/test/backchannel-logouts') {
    ctx.body = backchannelLogouts.filter((b) => b.client_id === ctx.query.client_id);
    return;
  }
  return next();
});

// Mutual TLS: the TLS listener and its endpoints as mtls_endpoint_aliases (RFC 8705 §5).
const mtlsPort = Number(process.env.OP_MTLS_PORT || 0);
if (mtlsPort) {
  const mtlsBase = `https://127.0.0.1:${mtlsPort}`;
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/.well-known/openid-configuration' && ctx.status === 200) {
      ctx.body.mtls_endpoint_aliases = Object.fromEntries(['token', 'userinfo', 'pushed_authorization_request', 'backchannel_authentication', 'introspection']
        .map((name) => [`${name}_endpoint`, ctx.body[`${name}_endpoint`]?.replace(issuer, mtlsBase)]));
    }
  });
  const mtlsServer = createHTTPSServer({
    cert: readFileSync(process.env.OP_TLS_CERT), key: readFileSync(process.env.OP_TLS_KEY), ca: readFileSync(process.env.OP_TLS_CA),
    requestCert: true, rejectUnauthorized: false,
  }, provider.callback());
  mtlsServer.listen(mtlsPort, '127.0.0.1', () => console.log(`mutual TLS endpoints at ${mtlsBase}`));
}

const server = provider.listen(port, '127.0.0.1', () => {
  const actual = server.address().port;
  if (port === 0) provider.issuer = `http://127.0.0.1:${actual}`;
  console.log(`oidc-provider ${issuer} ready`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
