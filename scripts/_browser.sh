# Debian's Chromium and its driver for the end-to-end browser tests. Sourced by scripts/test.sh.
ensure_browser() {
  if command -v chromium > /dev/null && command -v chromedriver > /dev/null; then
    return 0
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver > /dev/null
  else
    echo "chromium and chromedriver are missing; install Debian's chromium and chromium-driver for the e2e tests"
  fi
}
