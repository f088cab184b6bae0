# shellcheck shell=bash
# Yarn 2 and later ("Berry"), sourced by bin/compile: which yarn runs, where its cache
# lives, what an install leaves in the app (for the reuse copy), and how dynos run it.
# Uses bin/compile's globals and helpers (BUILD_DIR, CACHE_DIR, NODE, PM_CMD, PM_VERSION,
# LOCKFILE, PM_FIELD_VERSION, build_env, topic, info, error).
#
# Berry's cache is a folder of zip archives. With Plug'n'Play (its default linker) the
# app loads its packages from those zips at run time, through .pnp.cjs, which names them
# by paths relative to the app: the cache must be in the app (the slug), so the global
# cache is off and CACHE_DIR keeps a copy of the app's cache folder between builds. With
# node_modules (nodeLinker: node-modules, or pnpm) the zips are only read while
# installing, and the cache folder is in CACHE_DIR itself.

BERRY_DIR="$CACHE_DIR/yarn-berry"
BERRY_CACHE="$BERRY_DIR/cache"

# Fixed for every yarn run of the build (set after the config vars): nothing in HOME
# (read-only or throwaway in a container), no telemetry, no progress bars in the log.
YARN_BERRY_ENV=(
  YARN_ENABLE_GLOBAL_CACHE=false
  "YARN_GLOBAL_FOLDER=$BERRY_DIR/global"
  YARN_ENABLE_TELEMETRY=0
  YARN_ENABLE_PROGRESS_BARS=false
)

# Whether this Yarn app uses Berry: a yarn.lock Berry wrote (it has __metadata), a
# packageManager of yarn 2 or later, or, without packageManager, a yarnPath in .yarnrc.yml.
uses_yarn_berry() {
  if [[ -f yarn.lock ]] && grep -q '^__metadata:' yarn.lock; then return 0; fi
  if [[ -n "$PM_FIELD_VERSION" ]]; then
    [[ "$PM_FIELD_VERSION" != 1 && "$PM_FIELD_VERSION" != 1.* ]]
    return
  fi
  [[ -n "$(berry_yarn_path)" ]]
}

# yarnPath from .yarnrc.yml: the Yarn release the app vendors (in .yarn/releases).
berry_yarn_path() {
  if [[ -f .yarnrc.yml ]]; then
    sed -n "s/^yarnPath:[[:space:]]*['\"]\{0,1\}\([^'\"#]*[^'\"#[:space:]]\).*/\1/p" .yarnrc.yml \
      | head -n 1
  fi
}

# Sets YARN_PATH (a vendored release) or PM_WANTED (the @yarnpkg/cli-dist version to
# install), or stops the build saying what to add.
# shellcheck disable=SC2034  # PM_WANTED is bin/compile's
choose_yarn_berry() {
  YARN_PATH=$(berry_yarn_path)
  if [[ -n "$YARN_PATH" ]]; then
    if [[ "$YARN_PATH" == /* || "$YARN_PATH" == *..* || ! -f "$YARN_PATH" ]]; then
      error ".yarnrc.yml's yarnPath ($YARN_PATH) is not a file in the app. Commit the Yarn"
      error "release it names (yarn set version writes it to .yarn/releases), or remove"
      error "yarnPath and set packageManager in package.json; then push again."
      exit 1
    fi
    return 0
  fi
  if [[ "$PM_FIELD_VERSION" == 1 || "$PM_FIELD_VERSION" == 1.* ]]; then
    error "package.json's packageManager asks for Yarn $PM_FIELD_VERSION, but yarn.lock was"
    error "written by Yarn 2 or later. Set packageManager to the Yarn that wrote the lockfile"
    error "(yarn --version), or lock again with Yarn 1; commit and push again."
    exit 1
  fi
  if [[ -n "$PM_FIELD_VERSION" ]]; then
    PM_WANTED=$PM_FIELD_VERSION
    return 0
  fi
  # The newest Yarn that writes the lockfile's format; a newer one would rewrite it, which
  # --immutable refuses.
  local format
  format=$(sed -n '/^__metadata:/,/^[^ ]/s/^  version: *\([0-9]*\).*/\1/p' yarn.lock | head -n 1)
  case "$format" in
    4) PM_WANTED=2 ;;
    5) PM_WANTED=3.1 ;;
    6) PM_WANTED=3 ;;
    8) PM_WANTED=4 ;;
    *)
      error "Which Yarn to use is unclear (yarn.lock's __metadata version is"
      error "'${format:-missing}'). Set packageManager in package.json (for example"
      error "\`\"packageManager\": \"yarn@4.9.2\"\`), commit and push again."
      exit 1 ;;
  esac
}

# The sha512 a packageManager digest gives for Berry: corepack's, of bin/yarn.js.
yarn_berry_digest() {
  local digest
  digest=$(sha512sum "$1/node_modules/@yarnpkg/cli-dist/bin/yarn.js")
  echo "${digest%% *}"
}

# One setting as this build's yarn sees it (.yarnrc.yml, config vars, our overrides).
yarn_setting() {
  local value
  value=$(build_env "${YARN_BERRY_ENV[@]}" "${PM_CMD[@]}" config get "$1") || return
  value=${value#\"}
  echo "${value%\"}"
}

# Sets BERRY_LINKER and BERRY_CACHE_FOLDER (where this build's yarn keeps its zips).
configure_yarn_berry() {
  if ! BERRY_LINKER=$(yarn_setting nodeLinker 2>&1); then
    error "Yarn could not read its settings (.yarnrc.yml or a YARN_* config var):"
    printf '%s\n' "$BERRY_LINKER" | indent
    exit 1
  fi
  if [[ "$BERRY_LINKER" != pnp ]]; then
    YARN_BERRY_ENV+=("YARN_CACHE_FOLDER=$BERRY_CACHE")
    BERRY_CACHE_FOLDER=$BERRY_CACHE
    return 0
  fi
  BERRY_CACHE_FOLDER=$(yarn_setting cacheFolder)
  if [[ "$BERRY_CACHE_FOLDER" != "$BUILD_DIR"/* ]]; then
    error "With Plug'n'Play the app loads its packages from Yarn's cache folder, which must"
    error "then be in the app; .yarnrc.yml's cacheFolder is $BERRY_CACHE_FOLDER. Remove"
    error "cacheFolder (or point it inside the app), commit and push again."
    exit 1
  fi
}

# Plug'n'Play: puts the zips of the last build in the app's cache folder, next to any the
# app commits (its own are kept), so an install fetches only what is new.
seed_yarn_berry_cache() {
  local zip
  if [[ "$BERRY_LINKER" != pnp || ! -d "$BERRY_CACHE" ]]; then return 0; fi
  mkdir -p "$BERRY_CACHE_FOLDER"
  for zip in "$BERRY_CACHE"/*.zip; do
    if [[ -f "$zip" && ! -e "$BERRY_CACHE_FOLDER/${zip##*/}" ]]; then
      cp -a "$zip" "$BERRY_CACHE_FOLDER/"
    fi
  done
}

# Plug'n'Play: keeps what the install left in the app's cache folder (yarn removed the
# zips the lockfile no longer names) for the next build.
save_yarn_berry_cache() {
  if [[ "$BERRY_LINKER" != pnp || ! -d "$BERRY_CACHE_FOLDER" ]]; then return 0; fi
  rm -rf "$BERRY_CACHE.new"
  mkdir -p "$BERRY_CACHE.new"
  find "$BERRY_CACHE_FOLDER" -maxdepth 1 -name '*.zip' -exec cp -a -t "$BERRY_CACHE.new" {} +
  rm -rf "$BERRY_CACHE"
  mv "$BERRY_CACHE.new" "$BERRY_CACHE"
}

# What an install leaves in the app besides the cache folder: the reuse copy holds these.
yarn_berry_installed() {
  if [[ "$BERRY_LINKER" == pnp ]]; then
    echo .pnp.cjs .pnp.loader.mjs .pnp.data.json .yarn/install-state.gz .yarn/unplugged
  else
    echo node_modules .yarn/install-state.gz
  fi
}

save_yarn_berry_install() {
  local dest=$1 path
  rm -rf "$dest.new"
  mkdir -p "$dest.new"
  for path in $(yarn_berry_installed); do
    if [[ -e "$path" ]]; then
      mkdir -p "$dest.new/$(dirname "$path")"
      cp -a "$path" "$dest.new/$path"
    fi
  done
  rm -rf "$dest"
  mv "$dest.new" "$dest"
}

restore_yarn_berry_install() {
  cp -a "$1/." "$BUILD_DIR/"
}

# Yarn 4 prunes with `workspaces focus --production`; Yarn 2 and 3 only with the
# workspace-tools plugin, which the app must then vendor (importing it downloads it).
yarn_berry_can_prune() {
  [[ "${PM_VERSION%%.*}" -ge 4 ]] \
    || { [[ -f .yarnrc.yml ]] && grep -q 'plugin-workspace-tools' .yarnrc.yml; }
}

# `yarn` for dynos (a Procfile's `yarn start`), at .heroku/yarn/bin: the release the app
# vendors, run by a shim, or a copy of the one installed from the npm registry (into $1).
vendor_yarn_berry() {
  local installed=$1 bin="$BUILD_DIR/.heroku/yarn/bin"
  rm -rf "$BUILD_DIR/.heroku/yarn"
  mkdir -p "$bin"
  if [[ -n "$YARN_PATH" ]]; then
    {
      echo '#!/bin/sh'
      echo "# Runs the Yarn release the app vendors (yarnPath in .yarnrc.yml)."
      # shellcheck disable=SC2016  # $0 is for the shim, at run time
      printf 'exec node "$(dirname -- "$0")/../../../%s" "$@"\n' "$YARN_PATH"
    } > "$bin/yarn"
  else
    cp "$installed/node_modules/@yarnpkg/cli-dist/bin/yarn.js" "$bin/yarn"
  fi
  chmod 755 "$bin/yarn"
}

# Lines for .profile.d/nodejs.sh: yarn on PATH; with Plug'n'Play, node (and so `npm
# start` or `node server.js`) resolves packages through .pnp.cjs, as `yarn node` would.
# The paths are not quoted inside NODE_OPTIONS, as yarn writes them: `yarn run` takes an
# earlier --require of a .pnp.cjs out by a pattern that would leave a quote behind. HOME
# is a plain path in dynos; the loader (for import) is a file: URL.
yarn_berry_profile() {
  cat <<'PROFILE'
export PATH="$HOME/.heroku/yarn/bin:$PATH"
export YARN_ENABLE_TELEMETRY="${YARN_ENABLE_TELEMETRY:-0}"
PROFILE
  if [[ "$BERRY_LINKER" != pnp ]]; then return 0; fi
  # shellcheck disable=SC2016  # for the dyno's shell
  echo 'pnp_options="--require $HOME/.pnp.cjs"'
  if [[ -f .pnp.loader.mjs ]]; then
    # shellcheck disable=SC2016
    echo 'pnp_options="$pnp_options --experimental-loader file://$HOME/.pnp.loader.mjs"'
  fi
  cat <<'PROFILE'
export NODE_OPTIONS="$pnp_options${NODE_OPTIONS:+ $NODE_OPTIONS}"
unset pnp_options
PROFILE
}
