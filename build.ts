/**
 * Build the single executable `dist/tasklane`: minified, bytecode-compiled,
 * and blind to any `.env`, `bunfig.toml`, `tsconfig.json` or `package.json`
 * in the directory it is started from.
 */
import { VERSION } from "./src/version.ts";
import pkg from "./package.json" with { type: "json" };

if (pkg.version !== VERSION) {
  console.error(`build: package.json version ${pkg.version} differs from src/version.ts ${VERSION}`);
  process.exit(1);
}
const outfile = process.argv[2] ?? "dist/tasklane";
const result = await Bun.build({
  entrypoints: ["./src/main.ts"],
  minify: true,
  bytecode: true,
  format: "esm",
  target: "bun",
  sourcemap: "none",
  compile: {
    outfile,
    autoloadDotenv: false,
    autoloadBunfig: false,
    autoloadTsconfig: false,
    autoloadPackageJson: false,
  },
});
if (!result.success) {
  for (const log of result.logs) console.error(log);
  process.exit(1);
}
console.log(`built ${outfile}`);
