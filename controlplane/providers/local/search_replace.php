<?php
/*
 * AIPress search-replace: rewrites one site address to another in every text column of one
 * database, the way WP-CLI's `search-replace` does, plus the forms it misses. The one
 * implementation: the local provider feeds this file to `php --` on stdin as the site's user
 * with its pool's settings; on gcp the tenant image holds this very file at
 * /usr/local/share/aipress/search-replace.php and a Cloud Run job of that image runs it.
 *
 * Input: the environment variable AIPRESS_SEARCH_REPLACE, JSON
 *   {"database", "from", "to", "dry_run"?, "report_table"?, "host"?, "port"?, "user"?,
 *    "password"?}
 * where a missing connection member falls back to the tenant image's WORDPRESS_DB_HOST
 * ("host", "host:port" or "host:/socket/path"), WORDPRESS_DB_USER and WORDPRESS_DB_PASSWORD.
 * Output, the last line on stdout: JSON
 *   {"tables": {table: {column: cells changed}}, "rows", "cells", "dry_run", "unparsed",
 *    "skipped": [tables without a primary key]}
 * With "report_table" the report is also written, as the one row of that table (made in the
 * database; `report` LONGTEXT), for a run whose stdout nobody reads (a Cloud Run job's).
 * A dry run reads and counts the same and writes nothing (but that report).
 *
 * What is rewritten, for "from" = scheme://host[:port][/path] (host boundary kept: a from of
 * old.example leaves old.example.net and old.example-cdn.com alone):
 * - http://host and https://host (either scheme: both were the old site) -> the new URL;
 *   scheme-relative //host -> //new-host;
 * - the same JSON-escaped (http:\/\/host, \/\/host) and URL-encoded (http%3A%2F%2Fhost);
 * - inside PHP-serialized values, recursively (a serialized string holding another
 *   serialized value too), every string rewritten and its length recomputed.
 * Never rewritten: primary-key columns and `guid` columns (a post's guid is its permanent
 * id: feed readers key on it). Bytes are read and written as stored (connection charset
 * binary): a value in a latin1 column or with bytes that are not UTF-8 comes back unchanged
 * except where the address was.
 *
 * The database's contents are the tenant's and hostile: values are unserialized with
 * `allowed_classes => false`, so no object of any class is ever made (no __wakeup,
 * __destruct or autoloader runs); an object stays a __PHP_Incomplete_Class whose properties
 * are walked and which is serialized back under its own class name. A value that looks
 * serialized but does not parse, or whose rewrite would not parse back, is left as it is
 * (counted as unparsed) rather than corrupted by a plain replace.
 */

mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);

const AIPRESS_MAX_DEPTH = 8; // serialized values nested in serialized strings
const AIPRESS_BATCH = 500; // rows per write transaction

final class AipressRewriter
{
    /** @var array<int, array{string, callable}> pattern => replacement callback */
    private array $rules = [];
    private string $needle;
    public int $unparsed = 0;

    public function __construct(string $from, string $to)
    {
        $old = self::split($from);
        $new = self::split($to);
        $this->needle = $old['host_only'];
        // A character that continues a host name, port or path segment: not a boundary.
        $boundary = '(?![A-Za-z0-9_\-]|\.[A-Za-z0-9]|:[0-9]|%3[Aa][0-9])';
        $forms = [
            // [colon, two slashes, how a host/path is written in this form]
            [':', '//', fn (string $s): string => $s],
            [':', '\/\/', fn (string $s): string => str_replace('/', '\/', $s)],
            ['%3A', '%2F%2F', fn (string $s): string => str_replace([':', '/'], ['%3A', '%2F'], $s)],
        ];
        foreach ($forms as [$colon, $slashes, $write]) {
            $pattern = '~(https?' . self::quote($colon) . ')?' . self::quote($slashes)
                . self::quote($write($old['rest'])) . $boundary . '~';
            $scheme = $new['scheme'] . $colon . $slashes . $write($new['rest']);
            $relative = $slashes . $write($new['rest']);
            $this->rules[] = [$pattern, fn (array $m): string => ($m[1] ?? '') !== '' ? $scheme : $relative];
        }
    }

    /** @return array{scheme: string, rest: string, host_only: string} */
    private static function split(string $url): array
    {
        if (!preg_match('~^(https?)://([^/?#\s]+)(/[^?#\s]*)?$~', rtrim($url, '/'), $m)) {
            throw new InvalidArgumentException("not an http(s) URL: $url");
        }
        $host = strtolower($m[2]);
        return ['scheme' => $m[1], 'rest' => $host . ($m[3] ?? ''), 'host_only' => explode(':', $host)[0]];
    }

    // A regex-quoted literal whose percent escapes match either hex case.
    private static function quote(string $text): string
    {
        return preg_replace_callback(
            '~%([0-9A-F])([0-9A-F])~',
            fn (array $m): string => '%[' . $m[1] . strtolower($m[1]) . '][' . $m[2] . strtolower($m[2]) . ']',
            preg_quote($text, '~')
        );
    }

    public function needle(): string
    {
        return $this->needle;
    }

    /** The value rewritten (the same string when nothing in it is the old address). */
    public function value(string $value, int $depth = 0): string
    {
        if (stripos($value, $this->needle) === false) {
            return $value;
        }
        if (!self::looks_serialized($value)) {
            return $this->text($value);
        }
        $data = $depth < AIPRESS_MAX_DEPTH
            ? @unserialize($value, ['allowed_classes' => false, 'max_depth' => 512])
            : false;
        if ($data === false && $value !== 'b:0;') {
            $this->unparsed++;
            return $value;
        }
        try {
            $rewritten = serialize($this->walk($data, $depth + 1));
        } catch (UnexpectedValueException $exc) {
            $this->unparsed++;
            return $value;
        }
        if ($rewritten !== 'b:0;' && @unserialize($rewritten, ['allowed_classes' => false]) === false) {
            $this->unparsed++;
            return $value;
        }
        return $rewritten;
    }

    private function text(string $value): string
    {
        foreach ($this->rules as [$pattern, $replace]) {
            $value = preg_replace_callback($pattern, $replace, $value);
        }
        return $value;
    }

    /** What unserialize() would be tried on: one whole serialized value, WordPress's test. */
    public static function looks_serialized(string $value): bool
    {
        $value = trim($value);
        if ($value === 'N;') {
            return true;
        }
        if (strlen($value) < 4 || $value[1] !== ':') {
            return false;
        }
        $last = substr($value, -1);
        return strpos('aOsbidCE', $value[0]) !== false && ($last === ';' || $last === '}');
    }

    /** The unserialized data with every string rewritten (array keys kept). */
    private function walk(mixed $data, int $depth): mixed
    {
        if (is_string($data)) {
            return $this->value($data, $depth);
        }
        if (is_array($data)) {
            foreach ($data as $key => $item) {
                $data[$key] = $this->walk($item, $depth);
            }
            return $data;
        }
        if ($data instanceof __PHP_Incomplete_Class) {
            // Its properties as stored (private/protected names keep their NUL-mangled
            // form); rebuilt as text and read back as an incomplete object again, which
            // serialize() writes under its own class name.
            $props = (array) $data;
            $class = $props['__PHP_Incomplete_Class_Name'];
            unset($props['__PHP_Incomplete_Class_Name']);
            $out = 'O:' . strlen($class) . ':"' . $class . '":' . count($props) . ':{';
            foreach ($props as $key => $item) {
                $out .= serialize((string) $key) . serialize($this->walk($item, $depth));
            }
            $object = @unserialize($out . '}', ['allowed_classes' => false]);
            if (!$object instanceof __PHP_Incomplete_Class) {
                throw new UnexpectedValueException("object of $class did not rebuild");
            }
            return $object;
        }
        if (is_object($data)) {
            throw new UnexpectedValueException('an object was made'); // not with allowed_classes => false
        }
        return $data; // int, float, bool, null
    }
}

function aipress_ident(string $name): string
{
    return '`' . str_replace('`', '``', $name) . '`';
}

function aipress_connect(array $in): mysqli
{
    $host = $in['host'] ?? (getenv('WORDPRESS_DB_HOST') ?: '127.0.0.1');
    $port = (int) ($in['port'] ?? 3306);
    $socket = null;
    if (preg_match('~^([^:]*):(/.+)$~', $host, $m)) {
        [$host, $socket] = [$m[1] ?: 'localhost', $m[2]];
    } elseif (preg_match('~^(.+):([0-9]+)$~', $host, $m)) {
        [$host, $port] = [$m[1], (int) $m[2]];
    }
    $user = $in['user'] ?? (string) getenv('WORDPRESS_DB_USER');
    $password = $in['password'] ?? (string) getenv('WORDPRESS_DB_PASSWORD');
    $db = mysqli_init();
    // Cloud SQL's private IP takes encrypted connections only (as aipress-config.php asks
    // WordPress to connect); the local stack's MariaDB is reached over loopback.
    $flags = getenv('WORDPRESS_DB_TLS') === 'on'
        ? MYSQLI_CLIENT_SSL | MYSQLI_CLIENT_SSL_DONT_VERIFY_SERVER_CERT : 0;
    $db->real_connect($host, $user, $password, $in['database'], $port, $socket, $flags);
    $db->set_charset('binary'); // bytes as stored, whatever the column's charset
    return $db;
}

function aipress_json(array $report): string
{
    $report['tables'] = (object) $report['tables']; // {} when nothing changed, not []
    return json_encode($report, JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE);
}

function aipress_main(array $in): array
{
    $rewriter = new AipressRewriter((string) $in['from'], (string) $in['to']);
    $dry = (bool) ($in['dry_run'] ?? false);
    $read = aipress_connect($in);
    $write = aipress_connect($in);
    $like = "'%" . $read->real_escape_string(addcslashes($rewriter->needle(), '%_\\')) . "%'";
    $report = ['tables' => [], 'rows' => 0, 'cells' => 0, 'dry_run' => $dry, 'unparsed' => 0, 'skipped' => []];
    $text_types = ['char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext'];

    $stmt = $read->prepare(
        'SELECT c.TABLE_NAME, c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_KEY FROM information_schema.COLUMNS c '
        . 'JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME '
        . "WHERE c.TABLE_SCHEMA = ? AND t.TABLE_TYPE = 'BASE TABLE' ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION"
    );
    $stmt->bind_param('s', $in['database']);
    $stmt->execute();
    $tables = [];
    foreach ($stmt->get_result()->fetch_all() as [$table, $column, $type, $key]) {
        $tables[$table] ??= [[], []];
        if ($key === 'PRI') {
            $tables[$table][0][] = $column; // the row's address: never rewritten
        } elseif (in_array(strtolower($type), $text_types, true) && strtolower($column) !== 'guid') {
            $tables[$table][1][] = $column;
        }
    }

    $report_table = isset($in['report_table']) ? (string) $in['report_table'] : null;
    foreach ($tables as $table => [$keys, $texts]) {
        if (!$texts || (string) $table === $report_table) {
            continue;
        }
        if (!$keys) {
            $report['skipped'][] = (string) $table; // no primary key: a row cannot be named
            continue;
        }
        $where = implode(' OR ', array_map(fn ($c) => aipress_ident($c) . " LIKE $like", $texts));
        $select = 'SELECT ' . implode(', ', array_map('aipress_ident', array_merge($keys, $texts)))
            . ' FROM ' . aipress_ident($table) . " WHERE $where";
        $update = $write->prepare(
            'UPDATE ' . aipress_ident($table) . ' SET '
            . implode(', ', array_map(fn ($c) => aipress_ident($c) . ' = ?', $texts))
            . ' WHERE ' . implode(' AND ', array_map(fn ($c) => aipress_ident($c) . ' = ?', $keys))
        );
        $counts = [];
        $pending = 0;
        $write->begin_transaction();
        // Unbuffered: one row in memory at a time, whatever the table's size.
        $read->real_query($select);
        $result = $read->use_result();
        while ($row = $result->fetch_row()) {
            $key_values = array_slice($row, 0, count($keys));
            $values = array_slice($row, count($keys));
            $changed = false;
            foreach ($values as $i => $value) {
                if ($value === null) {
                    continue;
                }
                $new = $rewriter->value($value);
                if ($new !== $value) {
                    $values[$i] = $new;
                    $counts[$texts[$i]] = ($counts[$texts[$i]] ?? 0) + 1;
                    $report['cells']++;
                    $changed = true;
                }
            }
            if (!$changed) {
                continue;
            }
            $report['rows']++;
            if ($dry) {
                continue;
            }
            $params = array_merge($values, $key_values);
            $update->bind_param(str_repeat('s', count($params)), ...$params);
            $update->execute();
            if (++$pending >= AIPRESS_BATCH) {
                $write->commit();
                $write->begin_transaction();
                $pending = 0;
            }
        }
        $result->free();
        $write->commit();
        if ($counts) {
            $report['tables'][(string) $table] = $counts;
        }
    }
    $report['unparsed'] = $rewriter->unparsed;
    if ($report_table !== null) {
        $write->query('CREATE TABLE IF NOT EXISTS ' . aipress_ident($report_table)
            . ' (id INT PRIMARY KEY, report LONGTEXT NOT NULL)');
        $stmt = $write->prepare('REPLACE INTO ' . aipress_ident($report_table) . ' VALUES (1, ?)');
        $json = aipress_json($report);
        $stmt->bind_param('s', $json);
        $stmt->execute();
    }
    return $report;
}

// Says what to fix on stderr and exits 2 (STDERR is not defined for a script read from stdin).
function aipress_fail(string $message): never
{
    file_put_contents('php://stderr', $message . "\n");
    exit(2);
}

$raw = getenv('AIPRESS_SEARCH_REPLACE');
$in = is_string($raw) ? json_decode($raw, true) : null;
if (!is_array($in) || !isset($in['database'], $in['from'], $in['to'])) {
    aipress_fail('AIPRESS_SEARCH_REPLACE must be JSON with database, from and to');
}
try {
    $report = aipress_main($in);
} catch (InvalidArgumentException $exc) {
    aipress_fail($exc->getMessage());
}
echo aipress_json($report), "\n";
