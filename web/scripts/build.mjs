// Builds dist/: the files the API serves to browsers, taken from installed npm packages (no
// CDN at run time), and a manifest with each file's Subresource Integrity hash, which the API
// puts in the pages it renders. Run by `npm run build` (`make install` does it).
//
// - dist/graphiql: GraphiQL's prebuilt files, copied;
// - dist/app: the reference web app (src/app), bundled by Vite; its page gets an integrity
//   attribute on every script and stylesheet, and the manifest lists every file the API may
//   serve under /app/.
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const require = createRequire(join(root, "package.json"));

function fromPackage(pkg, file) {
  return join(dirname(require.resolve(`${pkg}/package.json`)), file);
}

const bundles = {
  graphiql: [
    fromPackage("graphiql", "graphiql.min.js"),
    fromPackage("graphiql", "graphiql.min.css"),
    fromPackage("react", "umd/react.production.min.js"),
    fromPackage("react-dom", "umd/react-dom.production.min.js"),
    join(root, "src/graphiql/index.html"),
    join(root, "src/graphiql/init.js"),
    join(root, "src/graphiql/page.css"),
  ],
};

function integrity(body) {
  return "sha384-" + createHash("sha384").update(body).digest("base64");
}

function filesUnder(directory) {
  return readdirSync(directory, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath ?? entry.path, entry.name));
}

const dist = join(root, "dist");
rmSync(dist, { recursive: true, force: true });
for (const [name, files] of Object.entries(bundles)) {
  const out = join(dist, name);
  mkdirSync(out, { recursive: true });
  const manifest = {};
  for (const source of files) {
    const body = readFileSync(source);
    const file = basename(source);
    writeFileSync(join(out, file), body);
    manifest[file] = integrity(body);
  }
  writeFileSync(join(out, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
  console.log(`web: built dist/${name} (${files.length} files)`);
}

// The web app: Vite bundles src/app into dist/app (vite.config.mjs).
const { build } = await import("vite");
await build({ configFile: join(root, "vite.config.mjs") });
const app = join(dist, "app");
const page = join(app, "index.html");
let html = readFileSync(page, "utf8");
html = html.replace(/(<(?:script|link)\b[^>]*?(?:src|href)="\/app\/([^"]+)")/g, (tag, _, file) => {
  return `${tag} integrity="${integrity(readFileSync(join(app, file)))}"`;
});
writeFileSync(page, html);
const appManifest = {};
for (const file of filesUnder(app)) {
  appManifest[relative(app, file)] = integrity(readFileSync(file));
}
writeFileSync(join(app, "manifest.json"), JSON.stringify(appManifest, null, 2) + "\n");
console.log(`web: built dist/app (${Object.keys(appManifest).length} files)`);
