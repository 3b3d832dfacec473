<?php
// The packages job (a Cloud Run job of the tenant image, run by the control plane's gcp
// PackagesStep): lists what the site has, installs catalogue zips in place of it (what each
// replaces set aside under the operation's key first), puts that back, drops it, and runs
// WordPress's database upgrade. Input: the JSON in AIPRESS_PACKAGES
// {run, action: list|install|restore|discard|upgrade, key?, archives?, activate?}; each
// archive's `file` is relative to the catalogue's read-only mount. Output: a JSON report written to the site's
// bucket (.aipress-packages/<run>.json, through the uploads mount), which the control plane
// reads and deletes: a job's stdout goes to Cloud Logging, which it does not read back.
//
// Plugins and themes are the site bucket's .aipress-code/plugins and .aipress-code/themes,
// mounted at wp-content/plugins and wp-content/themes; what an install replaces is kept in
// .aipress-code/previous/<key>/. Cloud Storage FUSE does not rename directories, so every
// move is a copy and a delete, ordered so that a run cut off anywhere can be run again: the
// copy set aside is marked complete before anything it covers changes.
//
// WP_INSTALLING keeps the active plugins and the theme's functions.php from loading while the
// job reads; it does not stop wp-config.php, must-use plugins or drop-ins (db.php,
// object-cache.php, advanced-cache.php), so the site's own code runs here and the control
// plane checks the report as untrusted (size, shape, patterns). Activation includes the
// plugin, as WordPress's own activation does.

define('WP_INSTALLING', true);
$input = json_decode((string) getenv('AIPRESS_PACKAGES'), true);
$root = rtrim(getenv('AIPRESS_WP_ROOT') ?: '/var/www/html', '/');
$catalogue = rtrim(getenv('AIPRESS_CATALOGUE_DIR') ?: '/var/aipress/catalogue', '/');
$uploads = "$root/wp-content/uploads";
$reports = "$uploads/.aipress-packages";

function aipress_report(array $report): void
{
    global $reports, $input;
    if (!is_dir($reports)) {
        mkdir($reports, 0755, true);
    }
    $run = preg_replace('/[^A-Za-z0-9_-]/', '', (string) ($input['run'] ?? 'unnamed'));
    file_put_contents("$reports/$run.json", json_encode($report));
}

function aipress_fail(string $message): void
{
    aipress_report(['ok' => false, 'error' => $message]);
    fwrite(STDERR, "$message\n");
    exit(1);
}

function aipress_remove(string $path): void
{
    if (is_link($path) || is_file($path)) {
        unlink($path);
        return;
    }
    if (!is_dir($path)) {
        return;
    }
    foreach (scandir($path) as $name) {
        if ($name !== '.' && $name !== '..') {
            aipress_remove("$path/$name");
        }
    }
    rmdir($path);
}

function aipress_copy(string $from, string $to): void
{
    if (is_link($from)) {
        aipress_fail("$from is a link: refusing to copy it");
    }
    if (is_file($from)) {
        if (!copy($from, $to)) {
            aipress_fail("could not copy $from");
        }
        return;
    }
    if (!is_dir($to)) {
        mkdir($to, 0755, true);
    }
    foreach (scandir($from) as $name) {
        if ($name !== '.' && $name !== '..') {
            aipress_copy("$from/$name", "$to/$name");
        }
    }
}

function aipress_dir(string $kind): string
{
    global $root;
    return $kind === 'theme' ? "$root/wp-content/themes" : "$root/wp-content/plugins";
}

function aipress_aside(string $key, string $kind, string $slug): string
{
    global $uploads;
    return "$uploads/.aipress-code/previous/$key/$kind/$slug";
}

function aipress_key(array $input): string
{
    $key = (string) ($input['key'] ?? '');
    if (!preg_match('/^[A-Za-z0-9_-]{1,64}$/', $key)) {
        aipress_fail('the key must be 1-64 letters, digits, - or _');
    }
    return $key;
}

// What the site has: core's version, every plugin and theme with its header's version.
function aipress_list(): array
{
    global $wp_version;
    require_once ABSPATH . 'wp-admin/includes/plugin.php';
    wp_clean_plugins_cache(false);
    $plugins = [];
    foreach (get_plugins() as $file => $data) {
        $slug = dirname($file) === '.' ? basename($file, '.php') : dirname($file);
        $plugins[] = ['kind' => 'plugin', 'slug' => $slug, 'version' => (string) $data['Version'],
            'name' => (string) $data['Name'], 'active' => is_plugin_active($file)];
    }
    $themes = [];
    $current = get_stylesheet();
    foreach (wp_get_themes(['errors' => null]) as $stylesheet => $theme) {
        $themes[] = ['kind' => 'theme', 'slug' => (string) $stylesheet,
            'version' => (string) $theme->get('Version'), 'name' => (string) $theme->get('Name'),
            'active' => $stylesheet === $current];
    }
    return ['core' => ['kind' => 'core', 'slug' => 'wordpress', 'version' => $wp_version,
        'name' => 'WordPress', 'active' => true], 'plugins' => $plugins, 'themes' => $themes];
}

// Every archive is checked (sha256, members under its slug) before anything changes.
function aipress_check(array $archive): string
{
    global $catalogue;
    foreach (['kind', 'slug', 'version', 'sha256', 'file'] as $field) {
        if (!is_string($archive[$field] ?? null)) {
            aipress_fail("an archive has no $field");
        }
    }
    if (!in_array($archive['kind'], ['plugin', 'theme'], true)
        || !preg_match('/^[a-z0-9][a-z0-9._-]*$/', $archive['slug'])) {
        aipress_fail("archive {$archive['slug']}: not a plugin or theme slug");
    }
    if (!preg_match('#^(plugin|theme)/[A-Za-z0-9._+-]+/[A-Za-z0-9._+-]+\.zip$#', $archive['file'])
        || strpos($archive['file'], '..') !== false) {
        aipress_fail("archive {$archive['slug']}: {$archive['file']} is not a catalogue file");
    }
    $path = "$catalogue/{$archive['file']}";
    if (!is_file($path)) {
        aipress_fail("archive {$archive['slug']} {$archive['version']}: $path is missing");
    }
    $sum = hash_file('sha256', $path);
    if (!hash_equals($archive['sha256'], $sum)) {
        aipress_fail("archive {$archive['slug']} {$archive['version']}: sha256 is $sum, "
            . "the catalogue says {$archive['sha256']}");
    }
    $zip = new ZipArchive();
    if ($zip->open($path) !== true) {
        aipress_fail("archive {$archive['slug']}: not a zip");
    }
    for ($i = 0; $i < $zip->numFiles; $i++) {
        $name = (string) $zip->getNameIndex($i);
        if (strpos($name, $archive['slug'] . '/') !== 0 || strpos($name, '..') !== false
            || strpos($name, '\\') !== false) {
            aipress_fail("archive {$archive['slug']}: member $name is outside {$archive['slug']}/");
        }
    }
    $zip->close();
    return $path;
}

function aipress_install(array $input): array
{
    global $catalogue;
    $key = aipress_key($input);
    $archives = $input['archives'] ?? [];
    foreach ($archives as $archive) {
        aipress_check($archive);
    }
    $archives = array_map(fn ($a) => $a + ['path' => "$catalogue/{$a['file']}"], $archives);
    foreach ($archives as $archive) {
        $kind = $archive['kind'];
        $target = aipress_dir($kind) . '/' . $archive['slug'];
        $aside = aipress_aside($key, $kind, $archive['slug']);
        // A repeat keeps the first copy: once marked, what was there before is known.
        if (!is_file("$aside/.done") && !is_file("$aside/.absent")) {
            aipress_remove($aside);
            mkdir($aside, 0755, true);
            if (is_dir($target)) {
                aipress_copy($target, "$aside/files");
                touch("$aside/.done");
            } else {
                touch("$aside/.absent");
            }
        }
        aipress_remove($target);
        $zip = new ZipArchive();
        $zip->open($archive['path']);
        if (!$zip->extractTo(aipress_dir($kind))) {
            aipress_fail("archive {$archive['slug']}: could not unpack it");
        }
        $zip->close();
    }
    if (!empty($input['activate'])) {
        aipress_activate($archives);
    }
    return ['ok' => true];
}

function aipress_activate(array $archives): void
{
    require_once ABSPATH . 'wp-admin/includes/plugin.php';
    wp_clean_plugins_cache(false);
    foreach ($archives as $archive) {
        if ($archive['kind'] === 'theme') {
            switch_theme($archive['slug']);
            continue;
        }
        $files = array_keys(get_plugins('/' . $archive['slug']));
        if (!$files) {
            aipress_fail("plugin {$archive['slug']}: no plugin header after unpacking");
        }
        $result = activate_plugin($archive['slug'] . '/' . $files[0]);
        if (is_wp_error($result)) {
            aipress_fail("plugin {$archive['slug']}: " . $result->get_error_message());
        }
    }
}

function aipress_restore(array $input): array
{
    global $uploads;
    $key = aipress_key($input);
    $base = "$uploads/.aipress-code/previous/$key";
    $changed = 0;
    foreach (['plugin', 'theme'] as $kind) {
        $dir = "$base/$kind";
        foreach (is_dir($dir) ? scandir($dir) : [] as $slug) {
            if ($slug === '.' || $slug === '..') {
                continue;
            }
            $target = aipress_dir($kind) . "/$slug";
            if (is_file("$dir/$slug/.done")) {
                aipress_remove($target);
                aipress_copy("$dir/$slug/files", $target);
                $changed++;
            } elseif (is_file("$dir/$slug/.absent")) {
                aipress_remove($target);
                $changed++;
            }
        }
    }
    aipress_remove($base);
    return ['ok' => true, 'changed' => $changed];
}

function aipress_discard(array $input): array
{
    global $uploads;
    aipress_remove("$uploads/.aipress-code/previous/" . aipress_key($input));
    return ['ok' => true];
}

function aipress_upgrade(): array
{
    global $wp_db_version;
    require_once ABSPATH . 'wp-admin/includes/upgrade.php';
    $before = (int) get_option('db_version');
    if ($before !== (int) $wp_db_version) {
        wp_upgrade();
    }
    return ['ok' => true, 'db_version' => (int) get_option('db_version'), 'was' => $before];
}

if (!is_array($input)) {
    aipress_fail('AIPRESS_PACKAGES is not a JSON object');
}
try {
    require "$root/wp-load.php";
    $action = (string) ($input['action'] ?? '');
    $report = match ($action) {
        'list' => ['ok' => true] + aipress_list(),
        'install' => aipress_install($input),
        'restore' => aipress_restore($input),
        'discard' => aipress_discard($input),
        'upgrade' => aipress_upgrade(),
        default => null,
    };
    if ($report === null) {
        aipress_fail("unknown action '$action'");
    }
    aipress_report($report);
} catch (Throwable $e) {
    aipress_fail(get_class($e) . ': ' . $e->getMessage());
}
