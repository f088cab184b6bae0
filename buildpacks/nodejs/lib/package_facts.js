// node package_facts.js PACKAGE_JSON NPM_CLI [SEED_DIR LOCKFILE NPM_CACHE]: the versions of
// the node running this (the stack's) and of the npm whose bin/npm-cli.js is NPM_CLI (read from its package.json:
// starting npm to ask costs 0.2-0.4 s), then what bin/compile needs from package.json, as
// name=value lines, with engines.node and engines.npm checked against those versions.
// The range matcher covers the forms apps
// use: exact versions, partial and x versions (20, 20.x, 20.1.*), comparators (>=, >, <=,
// <, =), ^ and ~ (and ~>), hyphen ranges (18 - 20), spaces as AND and || as OR.
// One node start for all of it: each costs ~0.1 s. With SEED_DIR LOCKFILE NPM_CACHE after
// those, it also copies what the platform's npm seed holds of LOCKFILE into the npm cache
// (lib/npm_seed.js), printed as seeded=N.
const fs = require("fs");
const crypto = require("crypto");
const path = require("path");
const [file, npmCli, seedDir, lockfile, npmCache] = process.argv.slice(2);
const oneLine = (s) => String(s).replace(/[\r\n]+/g, " ").trim();
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const put = (name, value) => console.log(`${name}=${oneLine(value)}`);

// A version or partial version: {n: [major, minor, patch] (null where absent or x), pre}.
function parseVersion(text) {
  const m = /^v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/
    .exec(text);
  if (!m) return null;
  const n = [m[1], m[2], m[3]].map((p) => (p === undefined || /^[xX*]$/.test(p) ? null : Number(p)));
  for (let i = 1; i < 3; i++) if (n[i - 1] === null) n[i] = null;
  return { n, pre: n[2] === null ? null : m[4] || null };
}
const given = (v) => v.n.filter((p) => p !== null).length;
const floor = (v) => ({ n: v.n.map((p) => p || 0), pre: v.pre });
// The first version above every version the partial `v` stands for (1.2 -> 1.3.0).
function ceiling(v) {
  const k = given(v);
  const n = v.n.slice(0, k).concat([0, 0, 0]).slice(0, 3);
  n[k - 1] += 1;
  for (let i = k; i < 3; i++) n[i] = 0;
  return { n, pre: null };
}
function comparePre(a, b) {
  const x = a.split("."), y = b.split(".");
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if (x[i] === undefined) return -1;
    if (y[i] === undefined) return 1;
    const nx = /^\d+$/.test(x[i]), ny = /^\d+$/.test(y[i]);
    if (nx && ny && Number(x[i]) !== Number(y[i])) return Number(x[i]) < Number(y[i]) ? -1 : 1;
    if (nx !== ny) return nx ? -1 : 1;
    if (x[i] !== y[i]) return x[i] < y[i] ? -1 : 1;
  }
  return 0;
}
function compare(a, b) {
  for (let i = 0; i < 3; i++) if (a.n[i] !== b.n[i]) return a.n[i] < b.n[i] ? -1 : 1;
  if (a.pre === b.pre) return 0;
  if (a.pre === null) return 1;
  if (b.pre === null) return -1;
  return comparePre(a.pre, b.pre);
}
const ANY = [], NONE = [[">", { n: [Infinity, 0, 0], pre: null }]];
// One comparator ("^1.2", ">=18", "20.x") as a list of [op, full version] tests.
function comparator(text) {
  const m = /^(<=|>=|<|>|=|~>|~|\^)?(.*)$/.exec(text);
  const op = m[1] || "=";
  const v = parseVersion(m[2]);
  if (!v) throw new Error(`not a version: ${text}`);
  const k = given(v);
  if (k === 0) return op === "<" || op === ">" ? NONE : ANY;
  switch (op) {
    case "=":
      return k === 3 ? [["=", v]] : [[">=", floor(v)], ["<", ceiling(v)]];
    case ">=":
      return [[">=", floor(v)]];
    case ">":
      return k === 3 ? [[">", v]] : [[">=", ceiling(v)]];
    case "<":
      return [["<", floor(v)]];
    case "<=":
      return k === 3 ? [["<=", v]] : [["<", ceiling(v)]];
    case "~":
    case "~>":
      return [[">=", floor(v)], ["<", ceiling({ n: [v.n[0], k > 1 ? v.n[1] : null, null] })]];
    case "^": {
      // Up to the next change of the first non-zero part given (^0.2.3 -> <0.3.0).
      let upto = 1;
      if (v.n[0] === 0 && k >= 2) upto = v.n[1] === 0 && k === 3 ? 3 : 2;
      return [[">=", floor(v)], ["<", ceiling({ n: v.n.slice(0, upto).concat([null, null]).slice(0, 3) })]];
    }
  }
}
function comparatorSet(text) {
  const hyphen = /^(\S+)\s+-\s+(\S+)$/.exec(text);
  if (hyphen) {
    const [low, high] = [parseVersion(hyphen[1]), parseVersion(hyphen[2])];
    if (!low || !high) throw new Error(`not a hyphen range: ${text}`);
    const upper = given(high) === 0 ? ANY : given(high) === 3 ? [["<=", high]] : [["<", ceiling(high)]];
    return [[">=", floor(low)], ...upper];
  }
  const parts = text.replace(/(<=|>=|<|>|=|~>|~|\^)\s+/g, "$1").split(/\s+/).filter(Boolean);
  return parts.flatMap(comparator);
}
function satisfies(version, range) {
  const v = parseVersion(version);
  const sets = String(range).trim().split("||").map((s) => comparatorSet(s.trim()));
  const test = ([op, c]) => {
    const d = compare(v, c);
    return { "=": d === 0, ">=": d >= 0, ">": d > 0, "<": d < 0, "<=": d <= 0 }[op];
  };
  return sets.some((set) => set.every(test));
}
function check(range, version) {
  if (range === undefined || range === null || range === "") return "unset";
  if (typeof range !== "string") return "invalid";
  try {
    return satisfies(version, range) ? "yes" : "no";
  } catch (e) {
    return "invalid";
  }
}

let npmVersion = "unknown";
try {
  npmVersion = JSON.parse(fs.readFileSync(path.join(npmCli, "../../package.json"), "utf8")).version;
} catch (e) {
  // Reported as unknown; the build goes on with the npm there is.
}
put("node_version", process.versions.node);
put("npm_version", npmVersion);

if (seedDir && lockfile && npmCache) {
  put("seeded", require("./npm_seed.js").fill(seedDir, lockfile, npmCache));
}

let pkg;
try {
  const bytes = fs.readFileSync(file);
  // bin/release trusts what this says of scripts.start for a package.json of this digest.
  put("package_json_digest", crypto.createHash("sha256").update(bytes).digest("hex"));
  pkg = JSON.parse(bytes.toString("utf8").replace(/^\uFEFF/, ""));
} catch (e) {
  put("error", e.message);
  process.exit(0);
}
if (!isObject(pkg)) {
  put("error", "it is not a JSON object");
  process.exit(0);
}
const engines = isObject(pkg.engines) ? pkg.engines : {};
const scripts = isObject(pkg.scripts) ? pkg.scripts : {};
const hasScript = (name) => typeof scripts[name] === "string" && scripts[name].trim() !== "";
put("engines_node", engines.node ?? "");
put("node_match", check(engines.node, process.versions.node));
put("engines_npm", engines.npm ?? "");
put("npm_match", npmVersion === "unknown" ? "unset" : check(engines.npm, npmVersion));
put("package_manager", typeof pkg.packageManager === "string" ? pkg.packageManager : "");
put("scripts", ["heroku-prebuild", "build", "heroku-postbuild", "heroku-cleanup", "start"]
  .filter(hasScript).join(" "));
// The app's own scripts that npm runs at install time (after the dependencies).
put("install_scripts", ["preinstall", "install", "postinstall", "prepublish", "preprepare",
  "prepare", "postprepare"].filter(hasScript).join(" "));
put("workspaces", pkg.workspaces ? 1 : 0);
put("dev_dependencies", isObject(pkg.devDependencies) && Object.keys(pkg.devDependencies).length ? 1 : 0);
// What of package.json decides node_modules; its name, version and scripts do not.
const sections = {};
for (const name of ["dependencies", "devDependencies", "optionalDependencies", "peerDependencies",
  "peerDependenciesMeta", "bundleDependencies", "bundledDependencies", "overrides",
  "resolutions", "pnpm", "packageManager"]) {
  sections[name] = pkg[name] ?? null;
}
put("dependencies_digest", crypto.createHash("sha256").update(JSON.stringify(sections)).digest("hex"));
