# Sourced by the entrypoint and the install job: splits WORDPRESS_SALTS (KEY=value lines, one
# Secret Manager secret) into the variables the official wp-config-docker.php reads.
if [ -n "${WORDPRESS_SALTS:-}" ]; then
  while IFS='=' read -r key value; do
    [ -n "$key" ] && export "WORDPRESS_${key}=${value}"
  done <<< "$WORDPRESS_SALTS"
fi
