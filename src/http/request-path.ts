/**
 * The path of an HTTP request, read from `request.url` without `new URL`
 * (which costs a parse, and throws on what Bun hands over for a request
 * without a usable `Host`: then `request.url` is the bare request target,
 * `/healthz`).
 *
 * Routing and authentication must agree on it. Elysia finds a request's path
 * by searching for the first "/" from a fixed index of the URL (11 when
 * `standardHostname` is on, as it is for HTTPS, else 7); a URL whose authority
 * is shorter than that (`https://ab/…`, a relative URL) would be routed by a
 * "/" further on — inside the path, or in the query (`/healthz?x=/api/v1/metrics`).
 * `routable` tells those apart so the agent refuses them instead.
 */

/** The request target's path: after the authority of an absolute URL, or from the start of a relative one; without the query. */
export function requestPath(url: string): string {
  const start = url.charCodeAt(0) === 47 /* "/" */ ? 0 : url.indexOf("/", url.indexOf("://") + 3);
  if (start < 0) return "/";
  const q = url.indexOf("?", start);
  return url.slice(start, q < 0 ? undefined : q);
}

/** The query string of a request URL (after "?", empty when there is none). */
export function requestQuery(url: string): string {
  const q = url.indexOf("?", url.charCodeAt(0) === 47 ? 0 : url.indexOf("://") + 3);
  return q < 0 ? "" : url.slice(q + 1);
}

const NO_PARAMS = new URLSearchParams();

/** The query parameters of a request URL (read-only: the empty set is shared). */
export function requestParams(url: string): URLSearchParams {
  const query = requestQuery(url);
  return query === "" ? NO_PARAMS : new URLSearchParams(query);
}

/** The path Elysia routes `url` by (its own search, from index 11 or 7). */
function routedPath(url: string, standardHostname: boolean): string {
  const s = url.indexOf("/", standardHostname ? 11 : 7);
  const qi = url.indexOf("?", s + 1);
  return url.substring(s, qi === -1 ? undefined : qi);
}

/** True when Elysia routes `url` by its real path (see the module comment). */
export function routable(url: string, standardHostname: boolean): boolean {
  return routedPath(url, standardHostname) === requestPath(url);
}
