"""The Python serialized-safe URL rewrite (gcp) against PHP itself: values serialized by PHP,
rewritten here, must unserialize in PHP to the same data with the URL replaced; and, where
the local provider's PHP script is in the tree, both give the same answer byte for byte."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from controlplane.providers.url_rewrite import looks_serialized, replace_in_value

OLD, NEW = "https://old.example", "https://nouveau.example.org"
LOCAL_SCRIPT = (
    Path(__file__).resolve().parents[2] / "controlplane/providers/local/search_replace.php"
)
# PHP values, serialized by PHP: nested arrays, an object of a class that is not loaded,
# a serialized value stored as a string inside another, multibyte text, URL-like keys.
SAMPLES = r"""
$old = 'https://old.example';
$o = new stdClass; $o->home = "$old/é"; $o->n = 3;
return [
    ['url' => "$old/shop", 'count' => 3, 'on' => true, 'ratio' => 0.25, 'none' => null],
    [[["deep $old/x"]], "$old" => 'key kept', 7 => ['a' => "ü $old ü"]],
    ['widget' => serialize(['link' => "$old/inner", 'n' => 1])],
    $o,
    "plain $old/page",
];
"""


def _php(code: str) -> str:
    result = subprocess.run(["php", "-n", "-r", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


pytestmark = pytest.mark.skipif(shutil.which("php") is None, reason="php is installed by make")


def _serialized_samples() -> list[bytes]:
    code = f"$v = (function () {{ {SAMPLES} }})();"
    code += "echo json_encode(array_map(fn ($x) => base64_encode(is_string($x) ? $x : serialize($x)), $v));"
    return [base64.b64decode(v) for v in json.loads(_php(code))]


def test_php_reads_back_the_rewritten_values_with_every_string_replaced() -> None:
    samples = _serialized_samples()
    rewritten = [replace_in_value(s, OLD.encode(), NEW.encode()) for s in samples]
    payload = json.dumps([base64.b64encode(r).decode() for r in rewritten])
    # In PHP: each rewritten value unserializes (no class is made), and is the original
    # data with the URL replaced in every string value (keys kept, nested values too).
    check = f"""
    $want = (function () {{ {SAMPLES} }})();
    function swap($v) {{
        if (is_string($v)) {{
            $inner = @unserialize($v, ['allowed_classes' => false]);
            return $inner !== false ? serialize(swap($inner)) : str_replace('{OLD}', '{NEW}', $v);
        }}
        if (is_array($v)) {{ foreach ($v as $k => $x) {{ $v[$k] = swap($x); }} return $v; }}
        if (is_object($v)) {{ foreach (get_object_vars($v) as $k => $x) {{ $v->$k = swap($x); }} return $v; }}
        return $v;
    }}
    foreach (json_decode('{payload}') as $i => $b64) {{
        $got = base64_decode($b64);
        $expected = swap($want[$i]);
        if (is_string($want[$i])) {{
            echo $got === $expected ? "ok\\n" : "differs $i\\n";
            continue;
        }}
        $read = unserialize($got, ['allowed_classes' => ['stdClass']]);
        echo $read == $expected ? "ok\\n" : "differs $i: $got\\n";
    }}
    """
    assert _php(check).split("\n")[:-1] == ["ok"] * len(samples)


def test_a_value_that_looks_serialized_but_does_not_parse_is_left_alone() -> None:
    broken = f'a:1:{{i:0;s:99:"{OLD}";}}'.encode()
    assert looks_serialized(broken)
    assert replace_in_value(broken, OLD.encode(), NEW.encode()) == broken
    plain = f"see {OLD}/x; a:b".encode()
    assert replace_in_value(plain, OLD.encode(), NEW.encode()) == f"see {NEW}/x; a:b".encode()


@pytest.mark.skipif(not LOCAL_SCRIPT.exists(), reason="the local provider's script is not here")
def test_the_same_answers_as_the_local_providers_php_script() -> None:
    source = LOCAL_SCRIPT.read_text()
    functions = source[source.index("function aipress_looks_serialized") : source.index("$read =")]
    values = [*_serialized_samples(), f'a:1:{{i:0;s:99:"{OLD}";}}'.encode()]
    payload = json.dumps([base64.b64encode(v).decode() for v in values])
    code = (
        functions
        + f"""
    foreach (json_decode('{payload}') as $b64) {{
        $r = aipress_replace(base64_decode($b64), '{OLD}', '{NEW}');
        echo $r === null ? "-" : base64_encode($r), "\\n";
    }}"""
    )
    theirs = _php(code).split("\n")[:-1]
    ours = []
    for value in values:
        rewritten = replace_in_value(value, OLD.encode(), NEW.encode())
        unparsed = rewritten == value and looks_serialized(value) and OLD.encode() in value
        ours.append("-" if unparsed else base64.b64encode(rewritten).decode())
    assert ours == theirs
