// SMART Backend Services (issue 12, protocol J1–J6): the core's TokenSession
// finds the token endpoint, builds the assertion, reads the answer and says
// when a new token is due; this file sends its requests and signs with
// WebCrypto (`crypto.subtle`): RS384 = RSASSA-PKCS1-v1_5 with SHA-384,
// ES384 = ECDSA P-384 with SHA-384 (WebCrypto returns the 96-byte r‖s JOSE wants).
// In a browser a private key does not belong in page code: use `token: () => ...`.
// A symmetric client gives `clientSecret` instead of a key: `client_secret_basic`
// (the core puts `Authorization: Basic` on the token request; nothing is signed).

import { TokenSession } from '../wasm/fhir_async_wasm.js';
import { AuthError, core, ResponseTooLargeError, UsageError } from './errors.js';
import { maxBodyOf } from './http.js';

const ALGS = {
  RS384: { importAs: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-384' }, sign: { name: 'RSASSA-PKCS1-v1_5' } },
  ES384: { importAs: { name: 'ECDSA', namedCurve: 'P-384' }, sign: { name: 'ECDSA', hash: 'SHA-384' } },
};

/** The algorithm of a private JWK or a CryptoKey. */
function algOf(key) {
  const name = key?.algorithm?.name;
  if (name === 'RSASSA-PKCS1-v1_5') return 'RS384';
  if (name === 'ECDSA') return 'ES384';
  if (key?.kty === 'RSA') return 'RS384';
  if (key?.kty === 'EC' && key.crv === 'P-384') return 'ES384';
  throw new UsageError('backendServices: key must be a private RSA or P-384 EC key (a JWK object or a CryptoKey)');
}

/**
 * The `auth` of `new FhirAsyncClient({ baseUrl, auth })`: SMART Backend
 * Services with a private key (a JWK object, as in a private JWKS, or a
 * CryptoKey that can sign), or a `clientSecret` (`client_secret_basic`).
 * `tokenUrl` is found by discovery when absent; `kid` defaults to the JWK's.
 * Node and other servers only: in a browser, keep the key or secret on a
 * server and pass `token: () => fetchTokenFromYourServer()`.
 */
export function backendServices({ clientId, key, clientSecret, scope, tokenUrl, kid } = {}) {
  if (typeof clientId !== 'string' || clientId === '') throw new UsageError('backendServices needs { clientId }');
  if (typeof scope !== 'string' || scope === '') throw new UsageError('backendServices needs { scope }, e.g. "system/*.rs"');
  if (clientSecret != null) {
    if (key != null) throw new UsageError('backendServices takes { key } or { clientSecret }, not both');
    if (typeof clientSecret !== 'string' || clientSecret === '') throw new UsageError('backendServices: clientSecret must be a non-empty string');
    return new BackendServicesAuth({ clientId, scope, tokenUrl, kid: null, alg: null }, null, clientSecret);
  }
  if (key == null || typeof key !== 'object') throw new UsageError('backendServices needs { key } (a private JWK object or a CryptoKey) or { clientSecret }');
  return new BackendServicesAuth({ clientId, scope, tokenUrl, kid: kid ?? key.kid ?? null, alg: algOf(key) }, key, null);
}

class BackendServicesAuth {
  #config;
  #key;
  #secret;
  #cryptoKey = null;
  #session = null;
  #pending = null;

  constructor(config, key, secret) {
    this.#config = config;
    // private: never in a repr, an error or a saved state (J6)
    this.#key = key;
    this.#secret = secret;
  }

  get kind() {
    return 'backendServices';
  }

  toJSON() {
    return { kind: 'backendServices', clientId: this.#config.clientId, scope: this.#config.scope };
  }

  /** A valid token (`force`: the server refused the last one). One fetch at a time. */
  token(client, force) {
    if (!this.#pending) {
      this.#pending = this.#fetch(client, force).finally(() => (this.#pending = null));
    }
    return this.#pending;
  }

  async #fetch(client, force) {
    const { clientId, scope, alg, tokenUrl, kid } = this.#config;
    const nonce = crypto.getRandomValues(new Uint32Array(2));
    this.#session ??= core(
      () =>
        new TokenSession(client.baseUrl, clientId, scope, alg, tokenUrl ?? null, kid, nonce[0] * 2 ** 21 + (nonce[1] >>> 11), this.#secret),
    );
    const s = this.#session;
    if (force) s.invalidate();
    for (;;) {
      const step = core(() => s.next(Date.now()));
      if (step.type === 'ready') return s.token(Date.now());
      if (step.type === 'sign') {
        const signature = await this.#sign(step.signingInput);
        core(() => s.signed(signature));
      } else if (step.type === 'wait') {
        await new Promise((resolve) => setTimeout(resolve, step.delayMs));
      } else if (step.type === 'send') {
        let res;
        try {
          res = await client._exchange(step.request, null);
        } catch (e) {
          core(() => s.handleTransportError(step.request.id, String(e?.cause?.message ?? e?.message ?? e), Date.now()));
          continue;
        }
        // A token answer past its ceiling was not read to its end (K9).
        if (res.body === null) throw new ResponseTooLargeError(`the token endpoint's answer is longer than ${maxBodyOf(step.request)} bytes`);
        core(() => s.handleResponse(step.request.id, res.status, res.headers, res.body, Date.now()));
      } else {
        throw new AuthError(`unknown auth step ${step.type}`);
      }
    }
  }

  async #sign(input) {
    const subtle = globalThis.crypto?.subtle;
    if (!subtle) throw new UsageError('backendServices needs WebCrypto (crypto.subtle)');
    const alg = ALGS[this.#config.alg];
    if (!this.#cryptoKey) {
      const k = this.#key;
      if (k.algorithm !== undefined && k.type !== undefined) {
        this.#cryptoKey = k; // a CryptoKey
      } else {
        // key_ops / use of a JWKS entry must not narrow what importKey allows
        const { key_ops: _ops, use: _use, ...jwk } = k;
        try {
          this.#cryptoKey = await subtle.importKey('jwk', jwk, alg.importAs, false, ['sign']);
        } catch (e) {
          throw new UsageError(`backendServices: the key cannot sign with ${this.#config.alg}: ${e?.message ?? e}`);
        }
      }
    }
    return new Uint8Array(await subtle.sign(alg.sign, this.#cryptoKey, new TextEncoder().encode(input)));
  }
}
