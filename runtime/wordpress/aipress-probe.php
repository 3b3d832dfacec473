<?php
// The startup probe (Apache maps /aipress-probe here, see aipress-apache.conf): 200 only when
// WordPress is installed and its database answers, 503 otherwise. Never a redirect: Cloud Run
// counts any 2xx or 3xx as a passing probe, and WordPress answers an uninstalled site with a
// 302 to install.php. The path does not end in "z": Cloud Run's front end reserves some such
// paths (/healthz among them) and answers them itself.
define('SHORTINIT', true);
header('Content-Type: text/plain');
header('Cache-Control: no-store');
$aipress_ok = false;
try {
    // DOCUMENT_ROOT is /var/www/html (the vhost's), also for this Alias'd script.
    require rtrim($_SERVER['DOCUMENT_ROOT'], '/') . '/wp-load.php';
    global $wpdb;
    $wpdb->suppress_errors(true);
    $aipress_ok = $wpdb && $wpdb->get_var(
        "SELECT option_value FROM {$wpdb->options} WHERE option_name = 'siteurl'"
    );
} catch (Throwable $e) {
    $aipress_ok = false;
}
http_response_code($aipress_ok ? 200 : 503);
echo $aipress_ok ? "ok\n" : "not installed\n";
