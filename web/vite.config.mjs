// The reference web app (src/app/) built into dist/app/, which the API serves at /app/: every
// module and asset from npm packages, bundled at install time; nothing loads from a CDN.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { defineConfig } from "vite";

const root = dirname(fileURLToPath(import.meta.url));

export default defineConfig({
  root: join(root, "src/app"),
  base: "/app/",
  logLevel: "warn",
  build: {
    outDir: join(root, "dist/app"),
    emptyOutDir: true,
    // One script and one stylesheet per build, with content hashes in their names.
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 2000,
    sourcemap: false,
  },
});
