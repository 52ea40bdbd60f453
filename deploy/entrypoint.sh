#!/bin/sh
# A sealtrail node's entrypoint (deploy/compose.yaml): the key files of every log under
# $SEALTRAIL_KEYS (default /keys) copied into this node's data directory (0600 in 0700), the
# KEK read from $SEALTRAIL_KEK_FILE (default the compose secret) into this process's
# environment only, then the command.
set -eu
umask 077
data="${SEALTRAIL_DATA:-/var/lib/sealtrail}"
keys="${SEALTRAIL_KEYS:-/keys}"
kek_file="${SEALTRAIL_KEK_FILE:-/run/secrets/sealtrail_kek}"
if [ "$data" != "$keys" ] && [ -d "$keys" ]; then
  for dir in "$keys"/*/; do
    [ -f "$dir/signing.key" ] || continue
    log="$(basename "$dir")"
    mkdir -p "$data/$log"
    chmod 700 "$data/$log"
    for file in signing.key verifier.vkey; do
      cp "$dir/$file" "$data/$log/.$file.tmp"
      chmod 600 "$data/$log/.$file.tmp"
      mv "$data/$log/.$file.tmp" "$data/$log/$file"
    done
  done
fi
if [ -r "$kek_file" ]; then
  SEALTRAIL_KEK="$(cat "$kek_file")"
  export SEALTRAIL_KEK
fi
exec "$@"
