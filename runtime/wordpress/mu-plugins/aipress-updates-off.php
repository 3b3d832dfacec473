<?php
/*
 * Plugin Name: AIPress updates off
 * Description: Updates are the platform's job: WordPress neither checks wordpress.org for
 * updates nor schedules those checks, so no page waits on the internet for them.
 * Installed by the platform; root-owned.
 */
defined('ABSPATH') || exit;

remove_action('init', 'wp_schedule_update_checks');
remove_action('admin_init', '_maybe_update_core');
remove_action('admin_init', '_maybe_update_plugins');
remove_action('admin_init', '_maybe_update_themes');
remove_action('wp_version_check', 'wp_version_check');
remove_action('wp_update_plugins', 'wp_update_plugins');
remove_action('wp_update_themes', 'wp_update_themes');
remove_action('wp_maybe_auto_update', 'wp_maybe_auto_update');
foreach (array('load-plugins.php', 'load-update.php', 'load-update-core.php') as $aipress_screen) {
    remove_action($aipress_screen, 'wp_update_plugins');
}
foreach (array('load-themes.php', 'load-update.php', 'load-update-core.php') as $aipress_screen) {
    remove_action($aipress_screen, 'wp_update_themes');
}
unset($aipress_screen);
add_filter('automatic_updater_disabled', '__return_true');
