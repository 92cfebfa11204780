import { describe, expect, test } from "bun:test";
import { effectivePrincipals, parseAuthConfig } from "../../src/auth/auth-config.ts";
import { hashToken } from "../../src/auth/hash-token.ts";
import { ConfigError } from "../../src/config.ts";

const H1 = hashToken("token-one");
const H2 = hashToken("token-two");

function errorOf(text: string): string {
  try {
    parseAuthConfig(text, "tasklane.toml");
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const message = (err as Error).message;
    expect(message).not.toContain("\n");
    return message;
  }
  throw new Error("expected a ConfigError");
}

describe("parseAuthConfig", () => {
  test("principals with defaults and explicit rates", () => {
    const cfg = parseAuthConfig(
      `[[principals]]
name = "alice"
role = "user"
token_sha256 = "${H1.toUpperCase()}"
rate_per_sec = 20
burst = 40

[[principals]]
name = "ops"
role = "admin"
token_sha256 = "${H2}"
`,
      "tasklane.toml",
    );
    expect(cfg).toEqual({
      principals: [
        { name: "alice", role: "user", tokenSha256: H1, ratePerSec: 20, burst: 40 },
        { name: "ops", role: "admin", tokenSha256: H2, ratePerSec: 50, burst: 100 },
      ],
      unauthenticated: { ratePerSec: 10, burst: 20 },
      agentLabels: {},
    });
  });

  test("[agent.labels] are read for the control-plane heartbeats", () => {
    const cfg = parseAuthConfig(`[agent.labels]
site = "edge-7"
rack = "r2"
`, "f.toml");
    expect(cfg.agentLabels).toEqual({ site: "edge-7", rack: "r2" });
    expect(() => parseAuthConfig(`[agent.labels]
site = 7
`, "f.toml")).toThrow("f.toml: agent.labels.site: must be a string, got 7");
    expect(() => parseAuthConfig(`[agent]
colour = "red"
`, "f.toml")).toThrow('f.toml: agent: unknown key "colour" (allowed: labels)');
  });

  test("burst defaults to twice the rate; [unauthenticated] is read", () => {
    const cfg = parseAuthConfig(
      `[unauthenticated]\nrate_per_sec = 2\n\n[[principals]]\nname = "v"\nrole = "viewer"\ntoken_sha256 = "${H1}"\nrate_per_sec = 3\n`,
      "f.toml",
    );
    expect(cfg.principals[0]).toEqual({ name: "v", role: "viewer", tokenSha256: H1, ratePerSec: 3, burst: 6 });
    expect(cfg.unauthenticated).toEqual({ ratePerSec: 2, burst: 4 });
  });

  test("an empty file has no principals", () => {
    expect(parseAuthConfig("", "f.toml")).toEqual({ principals: [], unauthenticated: { ratePerSec: 10, burst: 20 }, agentLabels: {} });
  });

  test("one-line errors name the file, the principal and the key", () => {
    const p = (body: string) => `[[principals]]\n${body}\n`;
    expect(errorOf("x = ")).toStartWith("tasklane.toml: invalid TOML:");
    // A token pasted without quotes: the parser's message would quote it.
    const pasted = errorOf(p('name = "ops"\nrole = "admin"\ntoken_sha256 = f39a1c0dSECRETTOKEN'));
    expect(pasted).toStartWith("tasklane.toml: invalid TOML:");
    expect(pasted).not.toContain("SECRETTOKEN");
    expect(errorOf("principal = 1")).toBe('tasklane.toml: unknown key "principal" (allowed: principals, unauthenticated, agent)');
    expect(errorOf('principals = "alice"')).toBe('tasklane.toml: principals: must be an array of tables ([[principals]]), got "alice"');
    expect(errorOf(p(`role = "user"\ntoken_sha256 = "${H1}"`))).toBe("tasklane.toml: principals[0]: name: required");
    expect(errorOf(p(`name = "a b"\nrole = "user"`))).toBe('tasklane.toml: principals[0]: name: must be 1..64 of [A-Za-z0-9._@-], got "a b"');
    expect(errorOf(p(`name = "alice"\ntoken_sha256 = "${H1}"`))).toBe("tasklane.toml: principals[0] (alice): role: required (one of admin, user, viewer)");
    expect(errorOf(p(`name = "alice"\nrole = "root"\ntoken_sha256 = "${H1}"`))).toBe(
      'tasklane.toml: principals[0] (alice): role: must be one of admin, user, viewer, got "root"',
    );
    expect(errorOf(p(`name = "alice"\nrole = "user"`))).toBe(
      "tasklane.toml: principals[0] (alice): token_sha256: required (print it with `tasklane hash-token`)",
    );
    expect(errorOf(p(`name = "alice"\nrole = "user"\ntoken_sha256 = "${H1}"\nrate_per_sec = 0`))).toBe(
      "tasklane.toml: principals[0] (alice): rate_per_sec: must be a number >= 0.001 (one request per 1000 s), got 0",
    );
    expect(errorOf(p(`name = "alice"\nrole = "user"\ntoken_sha256 = "${H1}"\nburst = "many"`))).toBe(
      'tasklane.toml: principals[0] (alice): burst: must be a number >= 1, got "many"',
    );
    expect(errorOf(`[[principals]]\nname = "a"\nrole = "user"\ntoken_sha256 = "${H1}"\n[[principals]]\nname = "b"\nrole = "user"\ntoken_sha256 = "${H1}"\n`)).toBe(
      "tasklane.toml: principals[1] (b): token_sha256: same as principals[0] (a); every principal needs its own token",
    );
    expect(errorOf(`[[principals]]\nname = "a"\nrole = "user"\ntoken_sha256 = "${H1}"\n[[principals]]\nname = "a"\nrole = "user"\ntoken_sha256 = "${H2}"\n`)).toBe(
      "tasklane.toml: principals[1] (a): name: already used by principals[0]",
    );
    expect(errorOf("[unauthenticated]\nburst = 0")).toBe("tasklane.toml: unauthenticated: burst: must be a number >= 1, got 0");
  });

  test("neither a mistyped token key nor a bad token_sha256 is echoed", () => {
    const secret = "s3cret-plaintext-token";
    const unknown = errorOf(`[[principals]]\nname = "alice"\nrole = "user"\ntoken = "${secret}"\n`);
    expect(unknown).toBe('tasklane.toml: principals[0] (alice): unknown key "token" (allowed: name, role, token_sha256, rate_per_sec, burst)');
    const bad = errorOf(`[[principals]]\nname = "alice"\nrole = "user"\ntoken_sha256 = "${secret}"\n`);
    expect(bad).toContain("principals[0] (alice): token_sha256: must be 64 hex digits");
    expect(bad).not.toContain(secret);
  });
});

describe("rate_per_sec", () => {
  test("below one request per 1000 s is a ConfigError naming the principal and the key; 0.001 is accepted", () => {
    const p = (rate: string) => `[[principals]]\nname = "alice"\nrole = "user"\ntoken_sha256 = "${H1}"\nrate_per_sec = ${rate}\nburst = 1\n`;
    expect(errorOf(p("1e-22"))).toBe("tasklane.toml: principals[0] (alice): rate_per_sec: must be a number >= 0.001 (one request per 1000 s), got 1e-22");
    expect(errorOf(p("0.0009"))).toBe("tasklane.toml: principals[0] (alice): rate_per_sec: must be a number >= 0.001 (one request per 1000 s), got 0.0009");
    expect(errorOf("[unauthenticated]\nrate_per_sec = 1e-9")).toBe(
      "tasklane.toml: unauthenticated: rate_per_sec: must be a number >= 0.001 (one request per 1000 s), got 1e-9",
    );
    expect(parseAuthConfig(p("0.001"), "f.toml").principals).toEqual([{ name: "alice", role: "user", tokenSha256: H1, ratePerSec: 0.001, burst: 1 }]);
  });
});

describe("effectivePrincipals", () => {
  test("TASKLANE_ADMIN_TOKEN adds the admin principal, hashed", () => {
    expect(effectivePrincipals(undefined, "env-token")).toEqual([
      { name: "admin", role: "admin", tokenSha256: hashToken("env-token"), ratePerSec: 50, burst: 100 },
    ]);
    expect(effectivePrincipals(undefined, undefined)).toEqual([]);
  });

  test("set but empty or blank is a ConfigError, not auth off", () => {
    for (const blank of ["", " ", "\t", "\n", "   "]) {
      expect(() => effectivePrincipals(undefined, blank)).toThrow(
        new ConfigError("TASKLANE_ADMIN_TOKEN is set but empty; unset it to run without auth, or give it a token"),
      );
    }
  });

  test("a token with whitespace, which no Bearer header can carry, is a ConfigError that does not show it", () => {
    for (const token of ["adm tok ", " admtok", "admtok\n", "adm\ttok", "adm\u00a0tok"]) {
      let message = "";
      try {
        effectivePrincipals(undefined, token);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        message = (err as Error).message;
      }
      expect(message).toBe(
        "TASKLANE_ADMIN_TOKEN: contains whitespace (a space, tab or newline), so no `Authorization: Bearer <token>` could ever match it; remove it (the value is not shown)",
      );
      expect(message).not.toContain("adm");
    }
  });

  test("a control or non-ASCII character (which clients send differently, or not at all) is a ConfigError too", () => {
    for (const [token, problem] of [
      ["adm\u0001tok", "must not contain line breaks or other control characters"],
      ["admtök", "must contain only printable ASCII characters"],
      ["adm\ufffdtok", "must contain only printable ASCII characters"],
    ]) {
      expect(() => effectivePrincipals(undefined, token)).toThrow(
        `TASKLANE_ADMIN_TOKEN: ${problem}, or no \`Authorization: Bearer <token>\` header sends it as given (the value is not shown)`,
      );
    }
  });

  test("a clash with the config file is a ConfigError that does not show the token", () => {
    const cfg = parseAuthConfig(`[[principals]]\nname = "alice"\nrole = "user"\ntoken_sha256 = "${hashToken("env-token")}"\n`, "f.toml");
    expect(() => effectivePrincipals(cfg, "env-token")).toThrow(
      "TASKLANE_ADMIN_TOKEN: same token as principal alice of the config file; every principal needs its own token",
    );
    const named = parseAuthConfig(`[[principals]]\nname = "admin"\nrole = "user"\ntoken_sha256 = "${H1}"\n`, "f.toml");
    expect(() => effectivePrincipals(named, "env-token")).toThrow(ConfigError);
  });
});
