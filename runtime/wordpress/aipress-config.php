<?php
// AIPress settings appended to wp-config.php (WORDPRESS_CONFIG_EXTRA).

// Cloud SQL (its private IP) takes encrypted connections only. Its server certificate names
// the instance, not the address WordPress dials, so only the encryption is asked for here;
// the route to it is the platform's own VPC peering.
if (getenv('WORDPRESS_DB_TLS') === 'on') {
    define('MYSQL_CLIENT_FLAGS', MYSQLI_CLIENT_SSL | MYSQLI_CLIENT_SSL_DONT_VERIFY_SERVER_CERT);
}
// Cloud Run terminates TLS: trust the proxy's scheme so WordPress builds https:// URLs.
if (($_SERVER['HTTP_X_FORWARDED_PROTO'] ?? '') === 'https') {
    $_SERVER['HTTPS'] = 'on';
}
if (getenv('WORDPRESS_SITE_URL')) {
    define('WP_HOME', getenv('WORDPRESS_SITE_URL'));
    define('WP_SITEURL', getenv('WORDPRESS_SITE_URL'));
}
// No code edits or installs from the admin screens: code comes with the image (a plugin
// installed from wp-admin would land on one instance's in-memory disk and vanish).
define('DISALLOW_FILE_EDIT', true);
define('DISALLOW_FILE_MODS', true);
// WordPress raises its own limit for wp-admin; it must not pass PHP's, which the workers'
// count was sized against.
if (getenv('PHP_MEMORY_LIMIT')) {
    define('WP_MEMORY_LIMIT', getenv('PHP_MEMORY_LIMIT'));
    define('WP_MAX_MEMORY_LIMIT', getenv('PHP_MEMORY_LIMIT'));
}
define('AUTOMATIC_UPDATER_DISABLED', true);
define('WP_POST_REVISIONS', 20);
// The theme a new site starts with (AIPRESS_DEFAULT_THEME, passed as WORDPRESS_THEME).
if (getenv('WORDPRESS_THEME')) {
    define('WP_DEFAULT_THEME', getenv('WORDPRESS_THEME'));
}
// No page waits on the internet: WordPress calls out only to the site itself and the hosts
// the platform allows (AIPRESS_SITE_OUTBOUND_ALLOW, passed as WORDPRESS_OUTBOUND_ALLOW).
define('WP_HTTP_BLOCK_EXTERNAL', true);
if (getenv('WORDPRESS_OUTBOUND_ALLOW')) {
    define('WP_ACCESSIBLE_HOSTS', getenv('WORDPRESS_OUTBOUND_ALLOW'));
}
// The platform runs each site's due events (`python -m controlplane.cron` requests
// /wp-cron.php once per interval): no visitor's request spawns WP-Cron.
define('DISABLE_WP_CRON', true);
// One-click wp-admin: mu-plugins/aipress-login.php checks links signed with this site's key
// (a Secret Manager reference in the service's env).
define('AIPRESS_SITE_ID', (string) getenv('AIPRESS_SITE_ID'));
define('AIPRESS_LOGIN_KEY', (string) getenv('AIPRESS_LOGIN_KEY'));
