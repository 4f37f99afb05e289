#!/bin/sh
# Installs headless Chromium for the viewer's browser test (tests/viewer/test_viewer_browser.py), where we can.
# Idempotent: quiet no-op when a Chromium is already on PATH. As root with apt-get: `apt-get install chromium`
# (Debian's package; `apt-get update` and one retry when the package lists are stale). Otherwise: a one-line hint.
# Always exits 0: without Chromium the browser test skips with its reason.
for name in chromium chromium-browser google-chrome google-chrome-stable; do
  command -v "$name" >/dev/null 2>&1 && exit 0
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  echo "installing chromium with apt-get (for the viewer's browser test)"
  apt-get install -y -q chromium >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
    || echo "warning: apt-get could not install chromium; the viewer's browser test will be skipped"
else
  echo "hint: install Chromium for the viewer's browser test (e.g. sudo apt-get install chromium); it is skipped without it"
fi
exit 0
