// Writes service/api/static/build-info.json after `vite build`: a hash of every input of
// the build, and of every file it wrote. tests/test_web_assets.py
// recomputes both, so committed assets that no longer match their sources fail the tests
// ("run `make web`"). Keep INPUTS and the hash in step with that test.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

const web = fileURLToPath(new URL("..", import.meta.url));
const out = join(web, "..", "service", "api", "static");
const INPUTS = ["index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts", "src", "scripts"];

function files(root, entry) {
  const path = join(root, entry);
  if (!statSync(path).isDirectory()) return [entry];
  return readdirSync(path).flatMap((name) => files(root, join(entry, name)));
}

const posix = (p) => p.split(sep).join("/");
const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

function digest(root, names) {
  const hash = createHash("sha256");
  for (const name of [...names].sort()) hash.update(`${name}\0${sha256(readFileSync(join(root, name)))}\n`);
  return hash.digest("hex");
}

const inputs = INPUTS.flatMap((e) => files(web, e)).map(posix);
const outputs = files(out, ".").map((p) => posix(relative(".", p))).filter((p) => p !== "build-info.json");
const info = {
  note: "Written by `make web` (web/scripts/build-info.mjs); a test checks it against web/ and these files.",
  inputs_sha256: digest(web, inputs),
  inputs: inputs.length,
  outputs: Object.fromEntries(outputs.sort().map((p) => [p, sha256(readFileSync(join(out, p)))])),
};
writeFileSync(join(out, "build-info.json"), JSON.stringify(info, null, 2) + "\n");
console.log(`build-info.json: ${inputs.length} inputs, ${outputs.length} outputs, ${info.inputs_sha256.slice(0, 12)}`);
