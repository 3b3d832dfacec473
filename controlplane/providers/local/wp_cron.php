<?php
/*
 * AIPress: runs a site's due WP-Cron events once, as the site's user, and prints a JSON
 * summary. Fed to `php -- <htdocs> <home url>` on stdin by the control plane's cron
 * (controlplane/providers/local/cron.py). WordPress's own wp-cron.php does the work, with its
 * lock, so a run never overlaps another run (or a visitor-spawned one) on the same site.
 */
$htdocs = $argv[1];
$parts = parse_url($argv[2]);
$_SERVER['HTTP_HOST'] = $parts['host'] . (isset($parts['port']) ? ':' . $parts['port'] : '');
$_SERVER['SERVER_NAME'] = $parts['host'];
$_SERVER['REQUEST_URI'] = '/wp-cron.php';
$_SERVER['REQUEST_METHOD'] = 'GET';
chdir($htdocs);

function aipress_due_events(): int {
    $due = 0;
    foreach (wp_get_ready_cron_jobs() as $hooks) {
        foreach ($hooks as $events) {
            $due += count($events);
        }
    }
    return $due;
}

$aipress_before = null;
register_shutdown_function(function () use (&$aipress_before) {
    $error = error_get_last();
    $fatal = $error && in_array($error['type'], [E_ERROR, E_PARSE, E_CORE_ERROR, E_COMPILE_ERROR, E_USER_ERROR], true);
    $after = function_exists('wp_get_ready_cron_jobs') && !$fatal ? aipress_due_events() : null;
    echo "\n" . json_encode([
        'due' => $aipress_before,
        'left' => $after,
        'error' => $fatal ? $error['message'] . ' in ' . basename($error['file']) . ':' . $error['line'] : null,
    ]) . "\n";
});

require $htdocs . '/wp-load.php';
$aipress_before = aipress_due_events();
require ABSPATH . 'wp-cron.php';
