<?php
/*
 * AIPress: reads and changes a site's packages inside WordPress (no wp-cli on the machine).
 * Runs as the site's user, fed to `php -- <htdocs>` on stdin with its input (JSON:
 * {"url", "action": "installed" | "activate" | "upgrade", "plugins": [slug], "theme": slug})
 * put in place of site_boot.php's marker by the control plane. Prints one JSON line.
 * WP_INSTALLING: the active plugins and the theme's functions.php are not loaded, so a plugin
 * that fatals on load cannot stop the platform from reading the site or putting its previous
 * version back. It does not stop wp-config.php, must-use plugins or drop-ins (db.php,
 * object-cache.php, advanced-cache.php): the control plane bounds this run and checks what
 * it prints as untrusted.
 * Runs after site_boot.php (which reads the input and sets $htdocs and $in).
 */

require $htdocs . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/plugin.php';
require_once ABSPATH . 'wp-admin/includes/theme.php';

// The plugin file of a directory slug ("demo" -> "demo/demo.php"); null when not installed.
function aipress_plugin_file(string $slug): ?string {
    foreach (array_keys(get_plugins()) as $file) {
        if (dirname($file) === $slug) {
            return $file;
        }
    }
    return null;
}

if ($in['action'] === 'installed') {
    $active = (array) get_option('active_plugins', []);
    $plugins = [];
    foreach (get_plugins() as $file => $data) {
        $dir = dirname($file);
        $plugins[] = [
            'slug' => $dir === '.' ? basename($file, '.php') : $dir,
            'name' => $data['Name'],
            'version' => $data['Version'],
            'active' => in_array($file, $active, true),
        ];
    }
    $themes = [];
    foreach (wp_get_themes() as $stylesheet => $theme) {
        $themes[] = [
            'slug' => $stylesheet,
            'name' => $theme->get('Name'),
            'version' => $theme->get('Version'),
            'active' => $stylesheet === get_stylesheet(),
        ];
    }
    echo json_encode(['core' => $GLOBALS['wp_version'], 'plugins' => $plugins, 'themes' => $themes]);
    exit(0);
}

if ($in['action'] === 'activate') {
    $done = [];
    foreach ($in['plugins'] as $slug) {
        $file = aipress_plugin_file($slug);
        if ($file === null) {
            fwrite(STDERR, "plugin $slug is not installed");
            exit(1);
        }
        $result = activate_plugin($file, '', false, true);
        if (is_wp_error($result)) {
            fwrite(STDERR, "plugin $slug cannot be activated: " . $result->get_error_message());
            exit(1);
        }
        $done[] = $slug;
    }
    if (!empty($in['theme'])) {
        $theme = wp_get_theme($in['theme']);
        if (!$theme->exists()) {
            fwrite(STDERR, "theme {$in['theme']} is not installed");
            exit(1);
        }
        switch_theme($theme->get_stylesheet());
    }
    echo json_encode(['activated' => $done, 'theme' => get_stylesheet()]);
    exit(0);
}

if ($in['action'] === 'upgrade') {
    require_once ABSPATH . 'wp-admin/includes/upgrade.php';
    wp_upgrade();
    echo json_encode(['db_version' => (int) get_option('db_version'), 'core' => $GLOBALS['wp_version']]);
    exit(0);
}
fwrite(STDERR, 'unknown action');
exit(1);
