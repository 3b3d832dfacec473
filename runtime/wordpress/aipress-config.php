<?php
// AIPress settings appended to wp-config.php (WORDPRESS_CONFIG_EXTRA).

// Cloud Run terminates TLS: trust the proxy's scheme so WordPress builds https:// URLs.
if (($_SERVER['HTTP_X_FORWARDED_PROTO'] ?? '') === 'https') {
    $_SERVER['HTTPS'] = 'on';
}
if (getenv('WORDPRESS_SITE_URL')) {
    define('WP_HOME', getenv('WORDPRESS_SITE_URL'));
    define('WP_SITEURL', getenv('WORDPRESS_SITE_URL'));
}
// No code edits from the admin screens: code comes with the image.
define('DISALLOW_FILE_EDIT', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
define('WP_POST_REVISIONS', 20);
