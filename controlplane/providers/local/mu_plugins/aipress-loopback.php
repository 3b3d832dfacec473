<?php
/*
 * Plugin Name: AIPress loopback
 * Description: Sends the site's requests to its own host names to this machine's web server
 * (AIPRESS_LOOPBACK, "address:port"), whatever DNS says: WP-Cron, Site Health's REST and
 * loopback checks and the page-cache check reach the site itself. Only the site's own names
 * (WP_HOME's host and AIPRESS_SITE_HOSTS) are pinned; nothing else is rerouted.
 * Installed by the platform; root-owned.
 */
defined('ABSPATH') || exit;

function aipress_loopback_hosts(): array
{
    $hosts = array(strtolower((string) wp_parse_url(home_url(), PHP_URL_HOST)));
    if (defined('AIPRESS_SITE_HOSTS') && AIPRESS_SITE_HOSTS !== '') {
        $hosts = array_merge($hosts, explode(',', strtolower(AIPRESS_SITE_HOSTS)));
    }
    return array_values(array_unique(array_filter($hosts)));
}

add_action('http_api_curl', function ($handle, $args, $url) {
    if (!defined('AIPRESS_LOOPBACK') || !defined('CURLOPT_CONNECT_TO')) {
        return;
    }
    $host = strtolower((string) wp_parse_url($url, PHP_URL_HOST));
    if (in_array($host, aipress_loopback_hosts(), true)) {
        // "host::address:port": any port of this name connects to the site's server instead.
        curl_setopt($handle, CURLOPT_CONNECT_TO, array($host . '::' . AIPRESS_LOOPBACK));
    }
}, 10, 3);

// The platform's readiness probe reaches a site still being built, and a WP-Cron spawn from
// that request would meet the building server block's 503: cron waits for the first visit.
if (isset($_SERVER['HTTP_X_AIPRESS_PROBE'])) {
    remove_action('init', 'wp_cron');
}
