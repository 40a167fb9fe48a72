// node-oidc-provider as a peer for `make bench` (bench/peer.sh): in memory (its default
// adapter), one client_secret_basic client with the client_credentials grant, ES256-signed JWT
// access tokens, introspection and RFC 7009 revocation. One process, as Node runs by default.
//
//   node server.mjs PORT        (or PORT=... node server.mjs)
//
// The client, secret, scopes, audience and lifetime are those of demo-client in local/seed.toml,
// so both servers sign the same claims. node-oidc-provider refuses to introspect or revoke a
// structured (JWT) token (unsupported_token_type, lib/shared/reject_structured_tokens.js): a
// second resource indicator, urn:bench:opaque, issues the same token in its opaque format for
// those two routes.
import { generateKeyPairSync } from 'node:crypto';

import Provider, { errors } from 'oidc-provider';

const port = Number(process.argv[2] ?? process.env.PORT ?? 3001);
const issuer = `http://127.0.0.1:${port}`;
const scope = 'read write revoke:batch';
const jwtResource = 'urn:bench:jwt';
const opaqueResource = 'urn:bench:opaque';

const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'demo-client',
    client_secret: 'demo-secret-for-localhost-only-0123456789',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope,
  }],
  // Its default, RS256, has no key here; nothing issues ID tokens, but clients are validated
  // against it.
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  jwks: { keys: [{ ...jwk, kid: 'bench-es256', alg: 'ES256', use: 'sig' }] },
  scopes: scope.split(' '),
  ttl: { ClientCredentials: 3600 },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    // The defaults, written out (which also keeps its notices about them off stderr): any
    // authenticated client may introspect; only the client a token was issued to may revoke it.
    introspection: {
      enabled: true,
      allowedPolicy: (ctx, client, token) => client.clientAuthMethod !== 'none' || token.clientId === client.clientId,
    },
    revocation: {
      enabled: true,
      allowedPolicy: (ctx, client, token) => {
        if (token.clientId === client.clientId) return true;
        if (client.clientAuthMethod === 'none') return false;
        throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
      },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => jwtResource,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resourceIndicator) => {
        if (resourceIndicator === jwtResource) {
          return {
            scope,
            audience: 'api',
            accessTokenTTL: 3600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        }
        if (resourceIndicator === opaqueResource) {
          return { scope, audience: 'api', accessTokenTTL: 3600, accessTokenFormat: 'opaque' };
        }
        throw new errors.InvalidTarget();
      },
    },
  },
});

// Quiet: nothing per request. A server error is still worth one line on stderr.
provider.on('server_error', (ctx, error) => console.error('server_error', error));

provider.listen(port, '127.0.0.1');
