#!/bin/bash
# Splits WORDPRESS_SALTS (KEY=value lines, one Secret Manager secret) into the official
# image's variables, then installs WordPress on the first start, in the background, once the
# official entrypoint has written wp-config.php.
set -euo pipefail

if [ -n "${WORDPRESS_SALTS:-}" ]; then
  while IFS='=' read -r key value; do
    [ -n "$key" ] && export "WORDPRESS_${key}=${value}"
  done <<< "$WORDPRESS_SALTS"
fi

install_once() {
  for _ in $(seq 1 60); do
    [ -f /var/www/html/wp-config.php ] && break
    sleep 1
  done
  cd /var/www/html
  if ! wp core is-installed --allow-root 2>/dev/null; then
    # The password goes in on stdin, not on a command line other processes could read.
    printf '%s' "${WORDPRESS_ADMIN_PASSWORD}" | wp core install --allow-root --skip-email \
      --url="${WORDPRESS_SITE_URL}" --title="${WORDPRESS_TITLE:-WordPress}" \
      --admin_user="${WORDPRESS_ADMIN_USER:-admin}" --admin_email="${WORDPRESS_ADMIN_EMAIL}" \
      --prompt=admin_password
    for plugin in wp-content/plugins/*/; do
      wp plugin activate --allow-root "$(basename "$plugin")" || true
    done
    # The platform's default theme, when this WordPress has it (else core's default stays).
    theme="${WORDPRESS_THEME:-twentytwentythree}"
    if wp theme is-installed --allow-root "$theme"; then
      wp theme activate --allow-root "$theme"
    fi
  fi
}
install_once &

exec docker-entrypoint.sh "$@"
