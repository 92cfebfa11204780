/**
 * Token hashing. The config file stores only the SHA-256 of each bearer
 * token (`token_sha256`); a presented token is hashed the same way and the
 * digests are compared in constant time (see `createAuthenticator`).
 */
// Bun's native hasher and Web Crypto: node:crypto is not loaded on the agent's start-up path (≈ 2 ms).

/** SHA-256 of `token` (UTF-8) as 32 raw bytes. */
export function tokenDigest(token: string): Buffer {
  return new Bun.CryptoHasher("sha256").update(token, "utf8").digest();
}

/** SHA-256 of `token` as 64 lower-case hex digits: the `token_sha256` of the config file (`tasklane hash-token`). */
export function hashToken(token: string): string {
  return tokenDigest(token).toString("hex");
}

/**
 * A new random token: 32 bytes as base64url (43 characters). base64url only
 * uses characters allowed in a WebSocket subprotocol, so the token also works
 * as `Sec-WebSocket-Protocol: tasklane, bearer.<token>`.
 */
export function generateToken(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
}
