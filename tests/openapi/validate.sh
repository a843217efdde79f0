#!/bin/sh
# validate.sh — runs validate.js on an OpenAPI document, installing swagger-parser from the npm
# registry into NPM_DIR first when it is not there. Exit 77 (skip) without node or npm.
# usage: validate.sh DOCUMENT NPM_DIR
set -eu
doc=$1
npm_dir=$2
here=$(cd "$(dirname "$0")" && pwd)
command -v node >/dev/null && command -v npm >/dev/null ||
    { echo "node and npm are needed (apt-get install nodejs npm): skipped"; exit 77; }
if [ ! -d "$npm_dir/node_modules/@apidevtools/swagger-parser" ]; then
    mkdir -p "$npm_dir"
    npm install --silent --no-audit --no-fund --prefix "$npm_dir" @apidevtools/swagger-parser@10.1.1
fi
NODE_PATH="$npm_dir/node_modules" node "$here/validate.js" "$doc"
