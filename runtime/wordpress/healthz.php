<?php
// 200 when WordPress is installed and its database answers; 503 otherwise (startup probe).
define('SHORTINIT', true);
require __DIR__ . '/wp-load.php';
global $wpdb;
$installed = $wpdb && $wpdb->get_var("SELECT option_value FROM {$wpdb->options} WHERE option_name = 'siteurl'");
http_response_code($installed ? 200 : 503);
header('Content-Type: text/plain');
echo $installed ? "ok\n" : "not installed\n";
