/**
 * How the agent names its host's CPU and operating system, everywhere it
 * reports them (`/api/v1/info`, gRPC `GetInfo`, heartbeats): as Go, Docker,
 * Kubernetes, Nomad and solti control planes name them, not as Node does.
 */

/** `x64` → `amd64`, `arm64` → `arm64`; anything else as Node names it. */
export function archName(arch: string = process.arch): string {
  if (arch === "x64") return "amd64";
  return arch;
}

/** `linux` → `linux`, `darwin` → `macos`, `win32` → `windows`; others as Node names them. */
export function platformName(platform: string = process.platform): string {
  if (platform === "darwin") return "macos";
  if (platform === "win32") return "windows";
  return platform;
}
