#!/usr/bin/env bash
# Run two unmodified third-party test suites over the kernel and over the stack with the pytest
# plugin (pytest --pytcp-green-compare) and list the tests whose outcome differs: httplib2 0.32.1
# (HTTP/HTTPS clients against servers in threads, SOCKS proxies) and pytest-httpserver 1.2.1
# (a werkzeug server in a thread, driven with requests).  Needs the package registry once (pip
# download of the sdists, which carry the tests).  Extra arguments go to pytest (e.g. -n 2).
# Exit status: 0 when no outcome differs in either suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$PWD/.venv/bin/python
work=${WORK:-$(mktemp -d /tmp/pytcp-green-third-party.XXXXXX)}
echo "third-party suites in $work"
"$PY" -m pip install -q "httplib2==0.32.1" "pytest-httpserver==1.2.1"
"$PY" -m pip download -q --no-deps --no-binary :all: -d "$work" "httplib2==0.32.1" "pytest_httpserver==1.2.1"
status=0
for sdist in "$work"/httplib2-0.32.1.tar.gz "$work"/pytest_httpserver-1.2.1.tar.gz; do
  tar -xzf "$sdist" -C "$work"
  project=${sdist%.tar.gz}
  echo "== $(basename "$project")"
  own=()
  # httplib2's setup.cfg asks for pytest-cov, which the suite does not need; its other options are kept.
  [[ $project == *httplib2* ]] && own=(-o "addopts=--ignore=tests/_TODO_legacy/ --noconftest")
  (cd "$project" && "$PY" -m pytest -q -p no:cacheprovider "${own[@]}" tests --pytcp-green-compare \
      --pytcp-green-keep="$work/$(basename "$project")-results" "$@") || status=1
done
exit $status
