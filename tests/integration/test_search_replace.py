"""The search-replace script (controlplane/providers/local/search_replace.php) on a corpus of
tricky values, against a real MariaDB with the real php: every rewritten value is what PHP
itself serializes for the data with the new address, and unserializes again."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from controlplane.providers.search_replace import INPUT_ENV, parse_report, script_source
from controlplane.stack.mariadb import MariaDB
from tests.integration.scratch_database import scratch_database

pytestmark = pytest.mark.integration
OLD, NEW = "http://old.example", "https://nouveau.example.org"
OLD_HOST, NEW_HOST = "old.example", "nouveau.example.org"

# The corpus, in PHP: each entry [table, column, value] is built by `corpus($u, $h)` with the
# old address ($u = OLD, $h = OLD_HOST) for what goes in and with the new one for what must
# come out; what must stay as it was uses $old and $oldhost in both.
CORPUS = r"""
class Missing_Widget { private $url; protected $title; public $n = 3;
    function __construct($u) { $this->url = "$u/w"; $this->title = "ü $u ü"; } }
function corpus(string $u, string $h): array {
    $old = 'http://old.example'; $oldhost = 'old.example';
    $o = new stdClass; $o->home = "$u/é"; $o->list = ["$u/a", 7 => "$u/b"];
    return [
        'nested' => ['wp_options', 'option_value', serialize([
            'url' => "$u/shop", 'deep' => [[['x' => "deep $u/x"]], 'n' => 3],
            'on' => true, 'ratio' => 0.25, 'none' => null, $old => 'key kept',
            7 => ['a' => "ü $u ü", 'b' => str_repeat('long ', 50) . "$u/tail"]])],
        'stdclass' => ['wp_options', 'option_value', serialize($o)],
        'missing_class' => ['wp_options', 'option_value', serialize(new Missing_Widget($u))],
        'double' => ['wp_options', 'option_value', serialize(serialize(['inner' => "$u/in", 'n' => 1]))],
        'in_array' => ['wp_options', 'option_value', serialize(['widget' => serialize(['link' => "$u/x"])])],
        'json' => ['wp_postmeta', 'meta_value', json_encode(
            ['url' => "$u/x", 'image' => ['src' => "$u/wp-content/uploads/a.png"], 'label' => 'é'])],
        'json_scheme_relative' => ['wp_postmeta', 'meta_value', json_encode(['src' => "//$h/a.png"])],
        'json_serialized' => ['wp_postmeta', 'meta_value', serialize(json_encode(['u' => "$u/p"]))],
        'scheme_relative' => ['wp_posts', 'post_content', "<img src=\"//$h/a.png\"> <a href=\"$u/\">"],
        'url_encoded' => ['wp_posts', 'post_content', 'share?u=' . rawurlencode("$u/page") . '&n=1'],
        'plain' => ['wp_posts', 'post_content', "see $u/page and $u."],
        'boundary' => ['wp_posts', 'post_content',
            "http://$oldhost.net/x https://$oldhost-cdn.com http://{$oldhost}er.com //$oldhost.org $u/ok"],
    ];
}
"""


@dataclass
class Db:
    """A database of its own on the test server, with a user granted only it."""

    server: MariaDB
    name: str
    user: str
    password: str

    def query(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        """Rows of one statement (committed)."""
        with self.server.connect() as conn, conn.cursor() as cur:
            cur.execute(f"USE `{self.name}`")
            cur.execute(sql, args)
            rows = list(cur.fetchall())
            conn.commit()
            return rows

    def run(self, old: str = OLD, new: str = NEW, *, dry_run: bool = False,
            php: tuple[str, ...] = ()) -> dict[str, Any]:  # fmt: skip
        """The script's report, run as the local provider runs it (source on stdin)."""
        payload = json.dumps({"host": "127.0.0.1", "port": self.server.port, "user": self.user,
                              "password": self.password, "database": self.name,
                              "from": old, "to": new, "dry_run": dry_run})  # fmt: skip
        done = subprocess.run(
            ["php", *php, "--"], input=script_source(), capture_output=True, text=True,
            env={"PATH": os.environ["PATH"], INPUT_ENV: payload}, check=False, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr + done.stdout
        parse_report(done.stdout)  # the shape the providers read
        report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return report


@pytest.fixture
def db(mariadb: MariaDB) -> Iterator[Db]:
    """A database of its own with the three tables the script rewrites."""
    with scratch_database(mariadb, "sr") as (name, password):
        database = Db(mariadb, name, name, password)
        database.query("CREATE TABLE wp_options (option_id BIGINT AUTO_INCREMENT PRIMARY KEY, "
                       "option_name VARCHAR(191), option_value LONGTEXT)")  # fmt: skip
        database.query("CREATE TABLE wp_postmeta (meta_id BIGINT AUTO_INCREMENT PRIMARY KEY, "
                       "meta_key VARCHAR(255), meta_value LONGTEXT)")  # fmt: skip
        database.query("CREATE TABLE wp_posts (ID BIGINT AUTO_INCREMENT PRIMARY KEY, "
                       "post_name VARCHAR(200), post_content LONGTEXT, guid VARCHAR(255))")  # fmt: skip
        yield database


def _php(code: str) -> str:
    done = subprocess.run(["php", "-n", "-r", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _corpus(url: str, host: str) -> dict[str, tuple[str, str, bytes]]:
    code = CORPUS + (f"echo json_encode(array_map(fn ($e) => [$e[0], $e[1], base64_encode($e[2])], "
                     f"corpus('{url}', '{host}')));")  # fmt: skip
    return {k: (t, c, base64.b64decode(v)) for k, (t, c, v) in json.loads(_php(code)).items()}


def _insert(db: Db, table: str, column: str, key: str, value: bytes) -> int:
    name = {"wp_options": "option_name", "wp_postmeta": "meta_key", "wp_posts": "post_name"}
    db.query(f"INSERT INTO {table} ({name[table]}, {column}) VALUES (%s, %s)", (key, value))
    return int(db.query("SELECT LAST_INSERT_ID()")[0][0])


def _read(db: Db, table: str, column: str, key: str) -> bytes:
    name = {"wp_options": "option_name", "wp_postmeta": "meta_key", "wp_posts": "post_name"}
    [(value,)] = db.query(f"SELECT CAST({column} AS BINARY) FROM {table} "
                          f"WHERE {name[table]} = %s", (key,))  # fmt: skip
    return bytes(value)


def _unserializes(values: list[bytes]) -> list[bool]:
    payload = json.dumps([base64.b64encode(v).decode() for v in values])
    code = (f"foreach (json_decode('{payload}') as $b) {{ $v = base64_decode($b); "
            "echo json_encode($v === 'b:0;' || @unserialize($v, ['allowed_classes' => false]) "
            "!== false), \"\\n\"; }")  # fmt: skip
    return [json.loads(line) for line in _php(code).splitlines()]


def _snapshot(db: Db) -> list[tuple[Any, ...]]:
    return [
        tuple(db.query(f"CHECKSUM TABLE {t}")[0]) for t in ("wp_options", "wp_postmeta", "wp_posts")
    ]


def test_every_value_of_the_corpus_is_what_php_serializes_with_the_new_address(db: Db) -> None:
    before, after = _corpus(OLD, OLD_HOST), _corpus(NEW, NEW_HOST)
    for key, (table, column, value) in before.items():
        _insert(db, table, column, key, value)
    report = db.run()
    got = {key: _read(db, table, column, key) for key, (table, column, _v) in before.items()}
    for key in before:
        assert got[key] == after[key][2], key
    serialized = [v for k, v in got.items() if k not in ("json", "json_scheme_relative",
                  "scheme_relative", "url_encoded", "plain", "boundary")]  # fmt: skip
    assert _unserializes(serialized) == [True] * len(serialized)
    # The boundary: other hosts that start with the old one are left alone.
    assert got["boundary"].startswith(b"http://old.example.net/x https://old.example-cdn.com "
                                      b"http://old.exampleer.com //old.example.org ")  # fmt: skip
    assert report["tables"] == {"wp_options": {"option_value": 5},
                                "wp_postmeta": {"meta_value": 3},
                                "wp_posts": {"post_content": 4}}  # fmt: skip
    assert (report["rows"], report["cells"], report["dry_run"]) == (12, 12, False)
    assert report["unparsed"] == 0


def test_either_old_scheme_becomes_the_new_url_json_escaped_and_url_encoded_too(db: Db) -> None:
    values = {
        "https": b"https://old.example/x",
        "json": b'{"a":"http:\\/\\/old.example\\/p","b":"https:\\/\\/old.example","c":"\\/\\/old.example\\/i"}',
        "lower_encoded": b"u=http%3a%2f%2fold.example%2fq",
        "port_kept": b"http://old.example:8080/x",
    }
    for key, value in values.items():
        _insert(db, "wp_posts", "post_content", key, value)
    db.run()
    got = {k: _read(db, "wp_posts", "post_content", k) for k in values}
    assert got == {
        "https": b"https://nouveau.example.org/x",
        "json": b'{"a":"https:\\/\\/nouveau.example.org\\/p","b":"https:\\/\\/nouveau.example.org",'
                b'"c":"\\/\\/nouveau.example.org\\/i"}',
        "lower_encoded": b"u=https%3A%2F%2Fnouveau.example.org%2fq",
        "port_kept": b"http://old.example:8080/x",  # another origin: the old one had no port
    }  # fmt: skip


def test_an_old_address_with_a_port_and_path_keeps_its_boundary(db: Db) -> None:
    old, new = "http://crumbs.localhost:8080/blog", "http://copy.localhost:8080"
    values = {"a": b"http://crumbs.localhost:8080/blog/x", "b": b"http://crumbs.localhost:80801/blog",
              "c": b"http://crumbs.localhost:8080/blogging", "d": b"http:\\/\\/crumbs.localhost:8080\\/blog\\/y",
              "e": b"http%3A%2F%2Fcrumbs.localhost%3A8080%2Fblog%2Fz"}  # fmt: skip
    for key, value in values.items():
        _insert(db, "wp_posts", "post_content", key, value)
    db.run(old, new)
    got = {k: _read(db, "wp_posts", "post_content", k) for k in values}
    assert got == {"a": b"http://copy.localhost:8080/x", "b": values["b"], "c": values["c"],
                   "d": b"http:\\/\\/copy.localhost:8080\\/y",
                   "e": b"http%3A%2F%2Fcopy.localhost%3A8080%2Fz"}  # fmt: skip


def test_guid_and_primary_keys_are_never_rewritten(db: Db) -> None:
    db.query("INSERT INTO wp_posts (post_name, post_content, guid) VALUES ('p', %s, %s)",
             (f"{OLD}/p", f"{OLD}/?p=1"))  # fmt: skip
    db.query("CREATE TABLE wp_links (url VARCHAR(191) PRIMARY KEY, note TEXT)")
    db.query("INSERT INTO wp_links VALUES (%s, %s)", (f"{OLD}/key", f"{OLD}/note"))
    db.query("CREATE TABLE no_key (v TEXT)")
    db.query("INSERT INTO no_key VALUES (%s)", (f"{OLD}/nokey",))
    report = db.run()
    assert db.query("SELECT post_content, guid FROM wp_posts") == [(f"{NEW}/p", f"{OLD}/?p=1")]
    assert db.query("SELECT url, note FROM wp_links") == [(f"{OLD}/key", f"{NEW}/note")]
    assert db.query("SELECT v FROM no_key") == [(f"{OLD}/nokey",)]
    assert report["tables"] == {"wp_links": {"note": 1}, "wp_posts": {"post_content": 1}}
    assert report["skipped"] == ["no_key"]


def test_bytes_that_are_not_utf8_survive_and_serialized_lengths_count_bytes(db: Db) -> None:
    db.query("CREATE TABLE legacy (id INT PRIMARY KEY, v TEXT CHARACTER SET latin1)")
    plain = b"caf\xe9 \xff\x81 http://old.example/x \xe9"
    url = b"http://old.example/\xe9"
    serialized = b'a:1:{i:0;s:%d:"%s";}' % (len(url), url)
    db.query("INSERT INTO legacy VALUES (1, %s), (2, %s)", (plain, serialized))
    db.run()
    rows = dict(db.query("SELECT id, CAST(v AS BINARY) FROM legacy"))
    assert rows[1] == b"caf\xe9 \xff\x81 https://nouveau.example.org/x \xe9"
    new_url = b"https://nouveau.example.org/\xe9"
    assert rows[2] == b'a:1:{i:0;s:%d:"%s";}' % (len(new_url), new_url)
    assert _unserializes([rows[2]]) == [True]


def test_a_hostile_class_name_is_never_instantiated(db: Db, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    # The class exists in the process (auto_prepend_file) and an autoloader is registered:
    # neither __wakeup, __destruct nor the autoloader may run; the value is still rewritten.
    prepend = tmp_path / "evil.php"
    prepend.write_text(
        "<?php class Aipress_Evil { public $url;"
        f" function __wakeup() {{ file_put_contents('{marker}', 'wakeup', FILE_APPEND); }}"
        f" function __destruct() {{ file_put_contents('{marker}', 'destruct', FILE_APPEND); }} }}"
        f" spl_autoload_register(function ($c) {{ file_put_contents('{marker}', \"load $c\", FILE_APPEND); }});"
    )  # fmt: skip
    url = f"{OLD}/evil"
    evil = f'O:12:"Aipress_Evil":1:{{s:3:"url";s:{len(url)}:"{url}";}}'.encode()
    unknown = f'a:1:{{i:0;O:8:"Not_Here":1:{{s:1:"u";s:{len(url)}:"{url}";}}}}'.encode()
    _insert(db, "wp_options", "option_value", "evil", evil)
    _insert(db, "wp_options", "option_value", "unknown", unknown)
    db.run(php=("-d", f"auto_prepend_file={prepend}"))
    assert not marker.exists(), marker.read_text()
    new_url = f"{NEW}/evil"
    got = _read(db, "wp_options", "option_value", "evil")
    assert got == f'O:12:"Aipress_Evil":1:{{s:3:"url";s:{len(new_url)}:"{new_url}";}}'.encode()
    got = _read(db, "wp_options", "option_value", "unknown")
    assert got == f'a:1:{{i:0;O:8:"Not_Here":1:{{s:1:"u";s:{len(new_url)}:"{new_url}";}}}}'.encode()


def test_a_value_that_looks_serialized_but_does_not_parse_is_left_alone(db: Db) -> None:
    broken = f'a:1:{{i:0;s:99:"{OLD}";}}'.encode()
    _insert(db, "wp_options", "option_value", "broken", broken)
    _insert(db, "wp_options", "option_value", "fine", f"{OLD}/x; a:b".encode())
    report = db.run()
    assert _read(db, "wp_options", "option_value", "broken") == broken
    assert _read(db, "wp_options", "option_value", "fine") == f"{NEW}/x; a:b".encode()
    assert (report["unparsed"], report["cells"]) == (1, 1)


def test_a_dry_run_changes_nothing_and_counts_the_same(db: Db) -> None:
    for key, (table, column, value) in _corpus(OLD, OLD_HOST).items():
        _insert(db, table, column, key, value)
    before = _snapshot(db)
    dry = db.run(dry_run=True)
    assert _snapshot(db) == before
    real = db.run()
    assert _snapshot(db) != before
    assert dry["dry_run"] is True and real["dry_run"] is False
    assert {k: v for k, v in dry.items() if k != "dry_run"} == {
        k: v for k, v in real.items() if k != "dry_run"
    }
    assert real["cells"] == 12
    again = db.run()  # idempotent: nothing of the old address is left
    assert (again["rows"], again["cells"], again["tables"]) == (0, 0, {})


def test_bad_input_is_refused_and_changes_nothing(db: Db) -> None:
    done = subprocess.run(["php", "--"], input=script_source(), capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], INPUT_ENV: "{}"}, check=False)  # fmt: skip
    assert done.returncode == 2 and "must be JSON with database, from and to" in done.stderr
    before = _snapshot(db)
    with pytest.raises(AssertionError, match="not an http\\(s\\) URL: ftp://old"):
        db.run("ftp://old", NEW)
    assert _snapshot(db) == before
