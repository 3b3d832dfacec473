#!/usr/bin/env bash
# Installs the Debian packages the embedded default and the tests need, only when missing.
set -euo pipefail

# php-imagick: the one PHP module WordPress's Site Health recommends that the others lack.
# Debian's wordpress has its themes only as Recommends (skipped below): without a theme every
# page renders empty, so the default theme (AIPRESS_DEFAULT_THEME) is installed by name.
packages=(
  mariadb-server mariadb-client
  php-fpm php-mysql php-curl php-gd php-xml php-mbstring php-zip php-intl php-imagick
  nginx wordpress wordpress-theme-twentytwentythree
  restic  # backups: deduplicated, encrypted, one repository per tenant (providers/local/backups.py)
  nftables  # site users reach only their own nginx port and MariaDB (controlplane/stack/firewall.py)
  python3-venv
)
theme="${AIPRESS_DEFAULT_THEME:-twentytwentythree}"
if [ "$theme" != twentytwentythree ] && apt-cache show "wordpress-theme-$theme" >/dev/null 2>&1; then
  packages+=("wordpress-theme-$theme")
fi
for flag in "$@"; do
  case "$flag" in
    --with-browser) packages+=(chromium) ;;
    --with-postgres) packages+=(postgresql) ;;  # tests: the chatbot's production checkpointer
    *) echo "unknown flag $flag" >&2; exit 2 ;;
  esac
done

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "Installing Debian packages: ${missing[*]}"
$sudo apt-get update -qq
# WordPress is served by php-fpm + nginx: keep Apache out.
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" apache2- libapache2-mod-php- >/dev/null
