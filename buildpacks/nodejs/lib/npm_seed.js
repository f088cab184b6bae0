// fill(seedDir, lockfile, npmCache): copies into the npm cache at npmCache the package
// tarballs LOCKFILE names that the platform's npm seed (seedDir, read-only, $PAAS_NPM_SEED)
// holds and the cache lacks; how many. Both keep a tarball where cacache does, under the
// sha512 of its bytes (content-v2/sha512/ab/cd/ef...), and npm ci --prefer-offline reads a
// package from there by the lockfile's integrity alone, checking the bytes against it as it
// reads (and fetching the package from the registry instead when they do not match). The
// seed holds only tarballs the platform fetched and checked; nothing else of npm's cache
// (its index, the registry's metadata) comes from it.
const fs = require("fs");
const path = require("path");

// The sha512 digests (hex) of the tarballs a package-lock.json or npm-shrinkwrap.json names.
function lockfileDigests(lockfile) {
  let doc;
  try {
    doc = JSON.parse(fs.readFileSync(lockfile, "utf8"));
  } catch (e) {
    return [];
  }
  const entries = [];
  if (doc && doc.packages && typeof doc.packages === "object") {
    for (const [where, entry] of Object.entries(doc.packages)) if (where) entries.push(entry);
  } else {
    const levels = [doc && doc.dependencies];
    while (levels.length) {
      const level = levels.pop();
      if (!level || typeof level !== "object") continue;
      for (const entry of Object.values(level)) {
        entries.push(entry);
        if (entry && typeof entry === "object") levels.push(entry.dependencies);
      }
    }
  }
  const digests = new Set();
  for (const entry of entries) {
    if (!entry || typeof entry !== "object" || entry.link || entry.inBundle) continue;
    if (typeof entry.resolved !== "string" || typeof entry.integrity !== "string") continue;
    const sha512 = entry.integrity.split(/\s+/).find((part) => part.startsWith("sha512-"));
    if (!sha512) continue;
    const raw = Buffer.from(sha512.slice(7).split("?")[0], "base64");
    if (raw.length === 64) digests.add(raw.toString("hex"));
  }
  return [...digests];
}

const where = (root, hex) => path.join(root, "sha512", hex.slice(0, 2), hex.slice(2, 4), hex.slice(4));

function fill(seedDir, lockfile, npmCache) {
  const content = path.join(npmCache, "_cacache", "content-v2");
  let copied = 0;
  for (const hex of lockfileDigests(lockfile)) {
    const target = where(content, hex);
    if (fs.existsSync(target)) continue;
    const staging = `${target}.seed`;
    try {
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.copyFileSync(where(seedDir, hex), staging);
      fs.renameSync(staging, target);
      copied += 1;
    } catch (e) {
      // Not in the seed (or not readable): npm fetches it.
      fs.rmSync(staging, { force: true });
    }
  }
  return copied;
}

module.exports = { fill, lockfileDigests };
