<?php
/*
 * AIPress: replaces one URL by another in every text column of a staged (restored) schema,
 * keeping PHP-serialized values valid (string lengths recomputed), for a site made from
 * another site's backup. Runs as the site's user with its pool's settings, fed to
 * `php --` on stdin with its input (JSON: {"host","port","user","password","database",
 * "from","to"}) put in place of the marker below. Prints a JSON summary.
 *
 * The database's contents are the tenant's and hostile: values are unserialized with
 * `allowed_classes => false` (no object of any class is ever made, so no __wakeup or
 * __destruct runs) and rebuilt as text; a value that looks serialized but does not parse
 * is left as it is rather than corrupted by a plain replace.
 */
$in = json_decode(__AIPRESS_INPUT__, true);
mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);

function aipress_connect(array $in): mysqli {
    $db = new mysqli($in['host'], $in['user'], $in['password'], $in['database'], (int) $in['port']);
    $db->set_charset('utf8mb4');
    return $db;
}

function aipress_ident(string $name): string {
    return '`' . str_replace('`', '``', $name) . '`';
}

function aipress_looks_serialized(string $value): bool {
    $value = trim($value);
    if ($value === 'N;') {
        return true;
    }
    if (strlen($value) < 4 || $value[1] !== ':') {
        return false;
    }
    $last = substr($value, -1);
    return strpos('aOsbidE', $value[0]) !== false && ($last === ';' || $last === '}');
}

// The value with `from` replaced; null when it looks serialized but cannot be parsed.
function aipress_replace(string $value, string $from, string $to, int $depth = 0): ?string {
    if (strpos($value, $from) === false) {
        return $value;
    }
    if (aipress_looks_serialized($value)) {
        if ($depth > 8) {
            return null;
        }
        $data = @unserialize($value, ['allowed_classes' => false, 'max_depth' => 128]);
        if ($data === false && trim($value) !== 'b:0;') {
            return null;
        }
        return aipress_reserialize($data, $from, $to, $depth + 1);
    }
    return str_replace($from, $to, $value);
}

// Serialized text of `data` with `from` replaced in every string value (keys kept).
function aipress_reserialize($data, string $from, string $to, int $depth): ?string {
    if (is_string($data)) {
        $replaced = aipress_replace($data, $from, $to, $depth);
        return $replaced === null ? null : serialize($replaced);
    }
    if (is_array($data)) {
        $out = 'a:' . count($data) . ':{';
        foreach ($data as $key => $item) {
            $inner = aipress_reserialize($item, $from, $to, $depth);
            if ($inner === null) {
                return null;
            }
            $out .= serialize($key) . $inner;
        }
        return $out . '}';
    }
    if ($data instanceof __PHP_Incomplete_Class) {
        // Its properties as stored (private/protected names keep their NUL-mangled form).
        $props = (array) $data;
        $class = $props['__PHP_Incomplete_Class_Name'];
        unset($props['__PHP_Incomplete_Class_Name']);
        $out = 'O:' . strlen($class) . ':"' . $class . '":' . count($props) . ':{';
        foreach ($props as $key => $item) {
            $inner = aipress_reserialize($item, $from, $to, $depth);
            if ($inner === null) {
                return null;
            }
            $out .= serialize((string) $key) . $inner;
        }
        return $out . '}';
    }
    if (is_object($data)) {
        return null; // not reachable with allowed_classes => false; never serialize one
    }
    return serialize($data); // int, float, bool, null
}

$read = aipress_connect($in);
$write = aipress_connect($in);
$from = $in['from'];
$to = $in['to'];
$like = "'%" . $read->real_escape_string(addcslashes($from, '%_\\')) . "%'";
$summary = ['tables' => 0, 'rows' => 0, 'values' => 0, 'unparsed' => 0, 'skipped_tables' => []];
$text_types = ['char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext'];

$tables = [];
$stmt = $read->prepare(
    "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'"
);
$stmt->bind_param('s', $in['database']);
$stmt->execute();
foreach ($stmt->get_result()->fetch_all() as $row) {
    $tables[] = $row[0];
}

foreach ($tables as $table) {
    $stmt = $read->prepare(
        'SELECT COLUMN_NAME, DATA_TYPE, COLUMN_KEY FROM information_schema.COLUMNS '
        . 'WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION'
    );
    $stmt->bind_param('ss', $in['database'], $table);
    $stmt->execute();
    $keys = [];
    $texts = [];
    foreach ($stmt->get_result()->fetch_all() as [$column, $type, $key]) {
        if ($key === 'PRI') {
            $keys[] = $column;
        }
        if (in_array(strtolower($type), $text_types, true)) {
            $texts[] = $column;
        }
    }
    if (!$texts) {
        continue;
    }
    if (!$keys) {
        $summary['skipped_tables'][] = $table; // no primary key: rows cannot be addressed
        continue;
    }
    $summary['tables']++;
    $where = implode(' OR ', array_map(fn ($c) => aipress_ident($c) . " LIKE $like", $texts));
    $select = 'SELECT ' . implode(', ', array_map('aipress_ident', array_merge($keys, $texts)))
        . ' FROM ' . aipress_ident($table) . " WHERE $where";
    $update = $write->prepare(
        'UPDATE ' . aipress_ident($table) . ' SET '
        . implode(', ', array_map(fn ($c) => aipress_ident($c) . ' = ?', $texts))
        . ' WHERE ' . implode(' AND ', array_map(fn ($c) => aipress_ident($c) . ' = ?', $keys))
    );
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
            $new = aipress_replace($value, $from, $to);
            if ($new === null) {
                $summary['unparsed']++;
            } elseif ($new !== $value) {
                $values[$i] = $new;
                $summary['values']++;
                $changed = true;
            }
        }
        if ($changed) {
            $params = array_merge($values, $key_values);
            $update->bind_param(str_repeat('s', count($params)), ...$params);
            $update->execute();
            $summary['rows']++;
        }
    }
    $result->free();
}
echo json_encode($summary), "\n";
