// node prune_dev.js LOCKFILE [--when-asked]: in the app directory, removes from
// node_modules what `npm prune --omit=dev` removes there after `npm ci` (the packages
// LOCKFILE marks "dev", their node_modules/.bin links and their entries in
// node_modules/.package-lock.json), without starting npm, which costs 0.5-1.5 s. It acts
// only when the lockfile and node_modules say the same thing; else it changes nothing,
// says why on stderr and exits 3, and the caller runs npm prune.
//
// With --when-asked it reads LOCKFILE at once, then waits for a first line on its standard
// input and prunes only if that is "prune". bin/compile starts it that way before the
// install, so that node's start-up overlaps npm ci and the build script instead of
// following them; when a build fails or keeps its devDependencies, the input ends unasked.
//
// "dev" is what npm's calc-dep-flags computes: a package no chain of dependencies,
// optionalDependencies or peerDependencies reaches from the app's own non-dev
// dependencies. A devOptional package (reached from the devDependencies and from the
// optionalDependencies alike) is kept, as npm keeps it when only dev is omitted. The
// lockfile's own flags must agree with that computation, package by package.
const fs = require("fs");
const path = require("path");

const HIDDEN = "node_modules/.package-lock.json";

const unsure = (why) => {
  throw new Error(why);
};

function readJson(file) {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    return unsure(`${file} could not be read (${e.message})`);
  }
}

// Where `name` resolves from the package at `from` ("" is the app), as node and npm look it
// up: in its own node_modules, then in each enclosing one.
function resolve(packages, from, name) {
  let dir = from;
  for (;;) {
    const candidate = (dir ? `${dir}/` : "") + `node_modules/${name}`;
    if (candidate in packages) return candidate;
    if (!dir) return null;
    const at = dir.lastIndexOf("node_modules/");
    dir = at <= 0 ? "" : dir.slice(0, at - 1);
  }
}

// The package directories under `dir`/node_modules, recursively (scopes walked into).
function installedDirs(dir, found = []) {
  const modules = path.join(dir, "node_modules");
  let names;
  try {
    names = fs.readdirSync(modules);
  } catch (e) {
    return found;
  }
  for (const name of names) {
    if (name.startsWith(".")) continue;
    const scoped = name.startsWith("@")
      ? fs.readdirSync(path.join(modules, name)).map((inner) => `${name}/${inner}`)
      : [name];
    for (const pkg of scoped) {
      const pkgDir = path.join(dir, "node_modules", pkg);
      found.push(pkgDir);
      if (!fs.lstatSync(pkgDir).isSymbolicLink()) installedDirs(pkgDir, found);
    }
  }
  return found;
}

function devPackages(lockfile) {
  const lock = readJson(lockfile);
  if (!(lock.lockfileVersion >= 2) || typeof lock.packages !== "object") {
    unsure(`${lockfile} is lockfileVersion ${lock.lockfileVersion}, without a "packages" map`);
  }
  const packages = lock.packages;
  const root = packages[""] || {};
  for (const [key, entry] of Object.entries(packages)) {
    if (entry.link) unsure(`${key} is a link (workspaces or file: dependencies)`);
    if (entry.extraneous) unsure(`${key} is extraneous`);
  }
  // Reach from the app's non-dev dependencies, along every edge but devDependencies.
  const reached = new Set();
  const queue = [""];
  while (queue.length) {
    const from = queue.pop();
    const entry = from === "" ? root : packages[from];
    for (const section of ["dependencies", "optionalDependencies", "peerDependencies"]) {
      for (const name of Object.keys(entry[section] || {})) {
        const to = resolve(packages, from, name);
        if (to && !reached.has(to)) {
          reached.add(to);
          queue.push(to);
        }
      }
    }
  }
  const dev = [];
  for (const [key, entry] of Object.entries(packages)) {
    if (key === "") continue;
    if (Boolean(entry.dev) === reached.has(key)) {
      unsure(`${lockfile} marks ${key} ${entry.dev ? "dev" : "not dev"}, which npm may recompute`);
    }
    if (entry.dev) dev.push(key);
  }
  return { packages, dev };
}

function prune(lockfile, { packages, dev }) {
  // node_modules must be what npm ci made of this lockfile: its record of what it installed
  // (the hidden lockfile) lists lockfile packages only, all present, and nothing else is.
  if (!fs.existsSync(HIDDEN)) unsure(`there is no ${HIDDEN}`);
  const hidden = readJson(HIDDEN);
  const installed = hidden.packages || {};
  for (const [key, entry] of Object.entries(installed)) {
    if (key === "") continue;
    if (!(key in packages) || packages[key].version !== entry.version) {
      unsure(`${key} in node_modules is not the one ${lockfile} lists`);
    }
    if (!fs.existsSync(key)) unsure(`${key} is missing`);
  }
  for (const dir of installedDirs(".")) {
    if (!(dir in installed)) unsure(`${dir} is not in ${HIDDEN}`);
  }
  const removed = new Set(dev.filter((key) => key in installed));
  if (!removed.size) return 0;

  // The .bin links into removed packages, in the node_modules each package was in. A kept
  // package with a bin of the same name there might have lost its link to a removed one.
  const binDirs = new Map();
  for (const key of removed) {
    const binDir = `${key.slice(0, key.lastIndexOf("node_modules/") + "node_modules".length)}/.bin`;
    if (!binDirs.has(binDir)) binDirs.set(binDir, []);
  }
  for (const [binDir, links] of binDirs) {
    let names = [];
    try {
      names = fs.readdirSync(binDir);
    } catch (e) {
      continue;
    }
    for (const name of names) {
      const link = path.join(binDir, name);
      if (!fs.lstatSync(link).isSymbolicLink()) continue;
      const target = path.relative(".", path.resolve(binDir, fs.readlinkSync(link)));
      if ([...removed].some((key) => target.startsWith(`${key}/`))) links.push(link);
    }
  }
  const keptBins = new Set();
  for (const key of Object.keys(installed)) {
    if (key === "" || removed.has(key)) continue;
    const binDir = `${key.slice(0, key.lastIndexOf("node_modules/") + "node_modules".length)}/.bin`;
    const bin = packages[key].bin || {};
    for (const name of typeof bin === "object" ? Object.keys(bin) : []) {
      keptBins.add(path.join(binDir, name));
    }
  }
  for (const links of binDirs.values()) {
    for (const link of links) {
      if (keptBins.has(link)) unsure(`${link} may have to point to a package that stays`);
    }
  }

  // Nothing is changed before this point.
  for (const links of binDirs.values()) links.forEach((link) => fs.rmSync(link));
  for (const key of removed) fs.rmSync(key, { recursive: true, force: true });
  for (const key of removed) delete installed[key];
  const text = fs.readFileSync(HIDDEN, "utf8");
  const indent = /^[{[]\r?\n([ \t]+)/.exec(text)?.[1] ?? 2;
  const eol = text.includes("\r\n") ? "\r\n" : "\n";
  let json = JSON.stringify(hidden, null, indent);
  if (eol !== "\n") json = json.replace(/\n/g, eol);
  fs.writeFileSync(HIDDEN, json + (/\r?\n$/.test(text) ? eol : ""));
  return removed.size;
}

// The first line of standard input, or null when it ends without one.
function firstLine() {
  const buffer = Buffer.alloc(256);
  let text = "";
  for (;;) {
    const count = fs.readSync(0, buffer, 0, buffer.length, null);
    if (count === 0) return null;
    text += buffer.toString("latin1", 0, count);
    if (text.includes("\n")) return text.slice(0, text.indexOf("\n"));
  }
}

const lockfile = process.argv[2];
let read;
try {
  read = devPackages(lockfile);
} catch (e) {
  read = e;
}
if (process.argv[3] === "--when-asked" && firstLine() !== "prune") process.exit(0);
try {
  if (read instanceof Error) throw read;
  const count = prune(lockfile, read);
  console.log(`removed ${count} package${count === 1 ? "" : "s"} (the devDependencies in ${lockfile})`);
} catch (e) {
  // Anything unexpected (a file where a scope directory should be, a permission) too: npm
  // prune then does the whole job, from whatever was removed so far.
  console.error(`Leaving it to npm prune: ${e.message}`);
  process.exit(3);
}
