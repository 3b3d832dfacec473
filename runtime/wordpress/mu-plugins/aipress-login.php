<?php
/**
 * Plugin Name: AIPress one-click sign-in
 * Description: Signs the platform's caller in to wp-admin as the site's admin from a signed,
 * single-use link (controlplane/admin_login.py makes it). Installed by AIPress; do not edit.
 *
 * The link is /wp-login.php?aipress_login=1#<token>. The fragment never reaches a server, so
 * a GET only answers a small page whose script POSTs the token back; the POST checks it:
 * HMAC-SHA256 with AIPRESS_LOGIN_KEY, this site's AIPRESS_SITE_ID, not expired, and a nonce
 * never seen before (recorded in this site's database in the same statement that checks it).
 */

if (!defined('ABSPATH')) {
    exit;
}

const AIPRESS_LOGIN_MAX_TTL = 300;

/** Why the token is refused, or the admin it signs in. */
function aipress_login_check(string $token)
{
    if (!defined('AIPRESS_LOGIN_KEY') || !defined('AIPRESS_SITE_ID') || AIPRESS_LOGIN_KEY === '') {
        return 'one-click sign-in is not configured on this site';
    }
    $parts = explode('.', $token);
    if (count($parts) !== 2 || !preg_match('/^[A-Za-z0-9_-]{1,2048}$/', $parts[0])
        || !preg_match('/^[a-f0-9]{64}$/', $parts[1])) {
        return 'the link is malformed';
    }
    [$payload, $signature] = $parts;
    if (!hash_equals(hash_hmac('sha256', $payload, (string) AIPRESS_LOGIN_KEY), $signature)) {
        return 'the link is not signed for this site';
    }
    $claims = json_decode((string) base64_decode(strtr($payload, '-_', '+/'), true), true);
    if (!is_array($claims) || !is_string($claims['site'] ?? null) || !is_string($claims['user'] ?? null)
        || !is_int($claims['exp'] ?? null) || !is_string($claims['nonce'] ?? null)
        || !preg_match('/^[a-f0-9]{32}$/', $claims['nonce'])) {
        return 'the link is malformed';
    }
    if (!hash_equals((string) AIPRESS_SITE_ID, $claims['site'])) {
        return 'the link is for another site';
    }
    $now = time();
    if ($claims['exp'] < $now) {
        return 'the link has expired';
    }
    if ($claims['exp'] > $now + AIPRESS_LOGIN_MAX_TTL) {
        return 'the link is valid for too long';
    }
    global $wpdb;
    // Not add_option(): it reads first and then upserts (INSERT ... ON DUPLICATE KEY UPDATE),
    // so two requests racing with one link could both succeed. INSERT IGNORE on the unique
    // option_name inserts for exactly one of them.
    $wpdb->query($wpdb->prepare(
        "INSERT IGNORE INTO {$wpdb->options} (option_name, option_value, autoload) VALUES (%s, %s, 'no')",
        'aipress_login_' . $claims['nonce'],
        (string) $claims['exp']
    ));
    if ($wpdb->rows_affected !== 1) {
        return 'the link was already used';
    }
    // Spent nonces matter only until their link expires.
    $wpdb->query($wpdb->prepare(
        "DELETE FROM {$wpdb->options} WHERE option_name LIKE %s AND CAST(option_value AS UNSIGNED) < %d",
        $wpdb->esc_like('aipress_login_') . '%',
        $now
    ));
    $user = get_user_by('login', $claims['user']);
    if (!$user || !user_can($user, 'manage_options')) {
        return "the site's admin account was not found";
    }
    return $user;
}

function aipress_login_page(): void
{
    header('Content-Type: text/html; charset=utf-8');
    echo '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        . '<meta name="referrer" content="no-referrer"><meta name="robots" content="noindex">'
        . '<title>Signing in</title></head><body>'
        . '<form method="post" action="?aipress_login=1"><input type="hidden" name="token"></form>'
        . '<p id="aipress-login-status">Signing in&hellip;</p>'
        . '<noscript><p>Signing in needs JavaScript.</p></noscript>'
        . '<script>(function () {'
        . 'var token = location.hash.slice(1);'
        . 'history.replaceState(null, "", location.pathname + location.search);'
        . 'if (!token) { document.getElementById("aipress-login-status").textContent ='
        . ' "This sign-in link is incomplete: ask AIPress for a new one."; return; }'
        . 'var form = document.forms[0]; form.token.value = token; form.submit();'
        . '})();</script></body></html>';
}

add_action('init', function (): void {
    if (!isset($_GET['aipress_login'])) {
        return;
    }
    nocache_headers();
    header('Referrer-Policy: no-referrer');
    header('X-Robots-Tag: noindex');
    if (($_SERVER['REQUEST_METHOD'] ?? 'GET') !== 'POST') {
        aipress_login_page();
        exit;
    }
    $token = isset($_POST['token']) && is_string($_POST['token']) ? wp_unslash($_POST['token']) : '';
    $user = aipress_login_check($token);
    if (is_string($user)) {
        wp_die(
            esc_html('Sign-in refused: ' . $user . '. Ask AIPress for a new link.'),
            'Sign-in refused',
            ['response' => 403]
        );
    }
    wp_set_current_user($user->ID);
    wp_set_auth_cookie($user->ID, false);
    do_action('wp_login', $user->user_login, $user);
    wp_safe_redirect(admin_url());
    exit;
}, 0);
