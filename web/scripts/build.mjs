// Builds dist/: the files the API serves to browsers, taken from installed npm packages (no
// CDN at run time), and a manifest with each file's Subresource Integrity hash, which the API
// puts in the pages it renders. Run by `npm run build` (`make install` does it).
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join } from "node:path";
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
    manifest[file] = "sha384-" + createHash("sha384").update(body).digest("base64");
  }
  writeFileSync(join(out, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
  console.log(`web: built dist/${name} (${files.length} files)`);
}
