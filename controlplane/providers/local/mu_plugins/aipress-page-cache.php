<?php
/*
 * Plugin Name: AIPress page cache
 * Description: The platform's nginx page cache marks what it serves with `X-Cache: HIT`;
 * tells Site Health's page-cache check to read that header.
 * Installed by the platform; root-owned.
 */
defined('ABSPATH') || exit;

add_filter('site_status_page_cache_supported_cache_headers', function (array $headers): array {
    $headers['x-cache'] = static function ($value): bool {
        return false !== stripos((string) $value, 'hit');
    };
    return $headers;
});
