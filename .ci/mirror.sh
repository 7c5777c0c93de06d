# Sourced by .ci/install-vulkan and .ci/coop-root.
# The machine's own Debian mirror: the first URI of a deb822 source (or the first deb line
# of sources.list) that serves the release itself, not its security suite.
mirror() {
  local uri
  uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' \
    /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|ftp):/) { print $i; exit } }' \
      /etc/apt/sources.list | head -n 1)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

