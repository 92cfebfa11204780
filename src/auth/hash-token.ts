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
 * Why `token` (trimmed) cannot be sent as `Authorization: Bearer <token>`, as
 * a clause for a message that never shows the token; undefined when it can.
 * No header can hold a control character; a space would split the
 * credential; beyond printable ASCII, clients disagree on the bytes (curl
 * sends UTF-8, others Latin-1), so a stored digest would match only some.
 * The CLI's `--token`, `hash-token` and TASKLANE_ADMIN_TOKEN all apply it.
 */
export function bearerTokenProblem(token: string): string | undefined {
  if (/[\x00-\x1f\x7f]/.test(token)) return "must not contain line breaks or other control characters";
  if (/[^\x20-\x7e]/.test(token)) return "must contain only printable ASCII characters";
  if (token.includes(" ")) return "must not contain spaces";
  return undefined;
}

/**
 * A new random token: 32 bytes as base64url (43 characters). base64url only
 * uses characters allowed in a WebSocket subprotocol, so the token also works
 * as `Sec-WebSocket-Protocol: tasklane, bearer.<token>`.
 */
export function generateToken(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
}
