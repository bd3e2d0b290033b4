#!/usr/bin/env bash
# Installs what funcie's build and tests need on Debian 12, as root: Debian's packages, then
# the npm peers of the integration tests (tests/peers). Safe to run again: it installs only
# what is missing, so a second run takes a second.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive

packages=(
  # build
  cmake ninja-build g++ clang clang-format libclang-rt-14-dev pkg-config make git
  # libraries
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev libcli11-dev libspdlog-dev
  libfmt-dev libhiredis-dev libgtest-dev libgmock-dev libbenchmark-dev
  libtomlplusplus-dev libinih-dev
  # TLS and crypto (src/net, src/crypto), static archives for funcie-cloud's zips
  libmbedtls-dev
  # OpenSSL: the TLS server of the HTTP client's unit tests (a peer funcie does not link)
  libssl-dev
  # the local console's invocation history (docs/console.md)
  libsqlite3-dev
  # test peers: Redis, curl for the bash runtime, openssl for test certificates, and what
  # aws-lambda-ric builds itself with
  redis-server curl openssl ca-certificates autoconf automake libtool python3 procps
  # the AWS CLI, as a developer calls funcie emulate with it (tests/integration/aws_cli)
  awscli
  # the debugging test (gdb under funcie connect); script(1) of bsdutils runs the pty test
  gdb bsdutils
  # funcie package (libzip, patchelf, strip from binutils) and its proof: zips unpacked with
  # unzip into an empty root that bubblewrap runs them in (tests/integration/package.test.mjs)
  libzip-dev patchelf binutils unzip bubblewrap
  # the console page's tests drive a real headless browser (tests/integration/console_browser)
  chromium
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${db:Status-Abbrev}' "$package" 2>/dev/null | grep -q '^ii'; then
    missing+=("$package")
  fi
done
# Node.js: keep the one on the machine (NodeSource's, say, which brings its own npm and
# conflicts with Debian's npm package); install Debian's only where there is none.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)

if [[ ${#missing[@]} -gt 0 ]]; then
  echo "deps.sh: installing ${missing[*]}"
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "deps.sh: run as root to install: ${missing[*]}" >&2; exit 1; }
    sudo=(sudo --preserve-env=DEBIAN_FRONTEND)
  fi
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
else
  echo "deps.sh: Debian packages already installed"
fi

# The integration tests' peers: aws-lambda-ric (builds a native addon at install) and the
# AWS SDK. `npm ci` installs exactly the lock file and runs aws-lambda-ric's install scripts
# with npm 10 (scripts run by default) and npm 11 (allowed by package.json's allowScripts;
# npm 11 refuses --allow-scripts on the command line in a project).
peers=tests/peers
addon=$peers/node_modules/aws-lambda-ric/dist/rapid-client.node
stamp=$peers/node_modules/.funcie-deps
want=$(cat "$peers/package.json" "$peers/package-lock.json" 2>/dev/null | sha256sum | cut -d' ' -f1)
if [[ -f $addon && -f $stamp && $(<"$stamp") == "$want" ]]; then
  echo "deps.sh: npm peers already installed"
else
  echo "deps.sh: installing the npm peers in $peers (aws-lambda-ric builds for a few minutes)"
  # node-gyp builds against the installed Node headers instead of downloading them.
  if [[ -z ${npm_config_nodedir:-} && -f /usr/include/node/node.h ]]; then
    export npm_config_nodedir=/usr
  fi
  if [[ -f $peers/package-lock.json ]]; then
    (cd "$peers" && npm ci --no-audit --no-fund </dev/null)
  else
    (cd "$peers" && npm install --no-audit --no-fund </dev/null)
  fi
  if [[ ! -f $addon ]]; then
    echo "deps.sh: aws-lambda-ric's native addon was not built ($addon missing):" \
         "its install script did not run or failed" >&2
    exit 1
  fi
  echo "$want" >"$stamp"
fi
