<?php
/*
 * AIPress: installs WordPress non-interactively (no wp-cli on the machine).
 * Runs as the site's user, fed to `php -- <htdocs>` on stdin with its input (JSON:
 * {"url","title","admin_user","admin_email","admin_password","theme","public"}) put in place
 * of site_boot.php's marker by the control plane. Prints a JSON result: what it did, the
 * active theme and whether it exists, and the WordPress version read from the site's own core.
 * Re-running it on an installed site only resets the admin password (and activates the
 * theme if the active one is missing): idempotent.
 * With "template" in the input ({"url","title","admin_user","admin_email","key"}) it installs
 * a template (site_template.py) with those placeholder values instead, marked by its
 * `aipress_template` option; site_template.personalise() makes each copy a site's, in SQL.
 * Runs after site_boot.php (which reads the input and sets $htdocs and $in).
 */

// No mail server here: skip the "your new site" e-mail (a pluggable function).
function wp_new_blog_notification($blog_title, $blog_url, $user_id, $password) {}

require $htdocs . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';

// Activates the platform's default theme when the active one is missing, asks search
// engines not to index a staging site (marking that the platform did); returns the result.
// A public site gets indexing back only where that mark says the platform turned it off
// (options promoted from staging): an owner's own "discourage search engines" stays.
function aipress_result(array $in, array $extra): string {
    if (array_key_exists('public', $in)) {
        if (!$in['public']) {
            update_option('blog_public', '0');
            update_option('aipress_hidden_by_platform', '1');
        } elseif (get_option('aipress_hidden_by_platform')) {
            update_option('blog_public', '1');
            delete_option('aipress_hidden_by_platform');
        }
    }
    $wanted = wp_get_theme($in['theme']);
    if (!wp_get_theme()->exists() && $wanted->exists()) {
        switch_theme($wanted->get_stylesheet());
    }
    return json_encode($extra + [
        'installed' => true,
        'theme' => get_stylesheet(),
        'theme_exists' => wp_get_theme()->exists(),
        'version' => $GLOBALS['wp_version'],
    ]);
}

if (is_blog_installed()) {
    $user = get_user_by('login', $in['admin_user']);
    // An import that kept its own user of this name: its password stays the site's own.
    if ($user && !get_option('aipress_admin_password_kept')) {
        wp_set_password($in['admin_password'], $user->ID);
    }
    echo aipress_result($in, ['already' => true]);
    exit(0);
}
// Offline and fast: no HTTP during the install (WordPress would probe its own permalinks
// with a 5 s timeout); the permalink structure is set directly below.
add_filter('pre_http_request', function () { return new WP_Error('aipress_offline', 'no HTTP during install'); });
$pretty = function () { return '/%postname%/'; };
add_filter('pre_option_permalink_structure', $pretty);
$tpl = $in['template'] ?? null;
if ($tpl) {
    // Everything the install writes from the site's URL reads the template's instead.
    $placeholder = function () use ($tpl) { return $tpl['url']; };
    add_filter('option_siteurl', $placeholder, 99);
    add_filter('option_home', $placeholder, 99);
    $result = wp_install($tpl['title'], $tpl['admin_user'], $tpl['admin_email'], true, '', wp_generate_password(32));
} else {
    $result = wp_install($in['title'], $in['admin_user'], $in['admin_email'], true, '', wp_slash($in['admin_password']));
}
if (is_wp_error($result)) {
    fwrite(STDERR, $result->get_error_message());
    exit(1);
}
remove_filter('pre_option_permalink_structure', $pretty);
global $wp_rewrite;
$wp_rewrite->set_permalink_structure('/%postname%/');
$wp_rewrite->flush_rules(false);
$theme = wp_get_theme($in['theme']);
if ($theme->exists()) {
    switch_theme($theme->get_stylesheet());
}
if ($tpl) {
    // What wp_install() took from WP_SITEURL itself (wp_guess_url()) gets the placeholder too.
    foreach (['siteurl', 'home'] as $name) {
        $wpdb->update($wpdb->options, ['option_value' => $tpl['url']], ['option_name' => $name]);
    }
    $wpdb->update($wpdb->users, ['user_url' => $tpl['url']], ['ID' => $result['user_id']]);
    add_option('aipress_template', $tpl, '', 'no');
    wp_cache_flush();
    echo aipress_result(['theme' => $in['theme']], ['already' => false, 'template' => $tpl['key']]);
    exit(0);
}
echo aipress_result($in, ['already' => false, 'user_id' => $result['user_id']]);
