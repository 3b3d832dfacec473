#!/bin/bash
# The install job (a Cloud Run job of the same image, run once by the control plane before the
# site's service is public): installs WordPress into the site's database, activates the bundled
# plugins and the platform's theme. Run again it changes nothing. Exits non-zero on failure so
# the job's execution fails and the control plane rolls the site back.
set -euo pipefail
# shellcheck source=aipress-salts.sh
source /usr/local/share/aipress/aipress-salts.sh
cd /var/www/html
# Plugins and themes live in the site's bucket (mounted over wp-content/plugins and
# wp-content/themes): seeded once from the image's, also for a site made before they moved.
for dir in plugins themes; do
  if [ ! -e "wp-content/$dir/.aipress-seeded" ]; then
    cp -r "/usr/src/wordpress/wp-content/$dir/." "wp-content/$dir/"
    touch "wp-content/$dir/.aipress-seeded"
  fi
done
if wp core is-installed --allow-root 2>/dev/null; then
  echo "WordPress is already installed"
  exit 0
fi
# The password goes in on stdin, not on a command line other processes could read.
printf '%s' "${WORDPRESS_ADMIN_PASSWORD}" | wp core install --allow-root --skip-email \
  --url="${WORDPRESS_SITE_URL}" --title="${WORDPRESS_TITLE:-WordPress}" \
  --admin_user="${WORDPRESS_ADMIN_USER:-admin}" --admin_email="${WORDPRESS_ADMIN_EMAIL}" \
  --prompt=admin_password
for plugin in wp-content/plugins/*/; do
  wp plugin activate --allow-root "$(basename "$plugin")"
done
# The platform's default theme, when this WordPress has it (else core's default stays).
theme="${WORDPRESS_THEME:-twentytwentythree}"
if wp theme is-installed --allow-root "$theme"; then
  wp theme activate --allow-root "$theme"
fi
echo "WordPress installed"
