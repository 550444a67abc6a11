// Builds the pages into build/pages/ (Workers static assets): each page's script and style
// bundled from npm packages by esbuild, with content-hashed names the page's HTML is
// rewritten to. Nothing is loaded from another origin at run time.
import { build } from "esbuild";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "build", "pages");
const pages = {
  playground: ["src/playground.jsx", "src/playground.css"],
  dashboard: ["src/dashboard.js", "src/dashboard.css"],
};

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "assets"), { recursive: true });
const result = await build({
  absWorkingDir: here,
  entryPoints: Object.values(pages).flat(),
  bundle: true,
  format: "esm",
  splitting: true,
  minify: true,
  sourcemap: false,
  target: ["chrome110", "firefox115", "safari16"],
  jsx: "automatic",
  define: { "process.env.NODE_ENV": '"production"' },
  loader: { ".woff": "file", ".woff2": "file", ".ttf": "file", ".svg": "file" },
  outdir: join(out, "assets"),
  entryNames: "[name]-[hash]",
  chunkNames: "chunk-[hash]",
  assetNames: "[name]-[hash]",
  metafile: true,
  logLevel: "warning",
});

// Which hashed file each entry point became.
const built = {};
for (const [file, meta] of Object.entries(result.metafile.outputs)) {
  if (meta.entryPoint) built[basename(meta.entryPoint)] = basename(file);
}
let bytes = 0;
for (const [page, entries] of Object.entries(pages)) {
  let html = readFileSync(join(here, `${page}.html`), "utf8");
  for (const entry of entries) {
    const plain = `./assets/${basename(entry).replace(/\.jsx$/, ".js")}`;
    if (!html.includes(plain)) throw new Error(`${page}.html does not load ${plain}`);
    html = html.replace(plain, `/assets/${built[basename(entry)]}`);
  }
  writeFileSync(join(out, `${page}.html`), html);
}
for (const [file, meta] of Object.entries(result.metafile.outputs)) bytes += meta.bytes;
console.log(`pages: ${Object.keys(pages).join(", ")} built into ${relative(process.cwd(), out)} (${(bytes / 1024).toFixed(0)} KiB of assets)`);
