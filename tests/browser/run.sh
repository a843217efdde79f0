#!/bin/sh
# run.sh — runs docs.js against a service on 127.0.0.1:PORT in Debian's chromium, installing
# puppeteer-core from the npm registry into NPM_DIR first when it is not there. Exit 77 (skip)
# without node, npm or chromium (apt-get install nodejs npm chromium).
# usage: run.sh PORT NPM_DIR [METHOD PATH PARAM VALUE]
set -eu
port=$1
npm_dir=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
chromium=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
command -v node >/dev/null && command -v npm >/dev/null && [ -n "$chromium" ] ||
    { echo "node, npm and chromium are needed (apt-get install nodejs npm chromium): skipped"; exit 77; }
if [ ! -d "$npm_dir/node_modules/puppeteer-core" ]; then
    mkdir -p "$npm_dir"
    npm install --silent --no-audit --no-fund --prefix "$npm_dir" puppeteer-core@24.43.1 >&2
fi
NODE_PATH="$npm_dir/node_modules" exec node "$here/docs.js" "$port" "$chromium" "$@"
