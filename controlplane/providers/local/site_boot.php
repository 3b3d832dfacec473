<?php
/*
 * AIPress: the start of each script the control plane feeds a site's php on stdin
 * (site_php.py puts it before wp_install.php and packages.php, and the script's input, JSON
 * with at least "url", in place of the marker below). Sets `$htdocs` (argv[1]) and `$in`,
 * makes the request look like one for the site's own address, and defines WP_INSTALLING:
 * the active plugins and the theme's functions.php are not loaded, so a plugin that fatals on
 * load cannot stop the platform's script.
 */
$htdocs = $argv[1];
$in = json_decode(__AIPRESS_INPUT__, true);
$parts = parse_url($in['url']);
$_SERVER['HTTP_HOST'] = $parts['host'] . (isset($parts['port']) ? ':' . $parts['port'] : '');
$_SERVER['SERVER_NAME'] = $parts['host'];
$_SERVER['REQUEST_URI'] = '/';
$_SERVER['REQUEST_METHOD'] = 'GET';
define('WP_INSTALLING', true);
