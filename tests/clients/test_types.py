"""clients/js/switchboard.d.ts: it compiles against the documented usage (tsc --strict, misuse
refused), and declares exactly the public methods and exports that switchboard.js has."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.clients.conftest import CLIENTS_JS, HERE


def test_the_declarations_accept_the_documented_usage_and_refuse_misuse(
    node_modules: Path,
) -> None:
    tsc = node_modules / "typescript" / "bin" / "tsc"
    result = subprocess.run(
        [
            "node",
            str(tsc),
            "--noEmit",
            "--strict",
            "--target",
            "es2022",
            "--lib",
            "es2022",
            "--module",
            "esnext",
            "--moduleResolution",
            "bundler",
            str(HERE / "js" / "types_check.ts"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_declarations_match_the_module(node_modules: Path) -> None:
    script = (
        "const m = await import(process.argv[1]);"
        "const proto = m.SwitchboardClient.prototype;"
        "const names = Object.getOwnPropertyNames(proto).filter(n => !n.startsWith('_') &&"
        " n !== 'constructor');"
        "console.log(JSON.stringify({exports: Object.keys(m).sort(), members: names.sort()}));"
    )
    out = subprocess.run(
        ["node", "--input-type=module", "-e", script, str(CLIENTS_JS / "switchboard.js")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    actual = json.loads(out)
    dts = (CLIENTS_JS / "switchboard.d.ts").read_text()
    exports = set(re.findall(r"^export declare (?:const|class|function) (\w+)", dts, re.M))
    assert sorted(exports | {"default"}) == actual["exports"]
    body = dts.split("export declare class SwitchboardClient {", 1)[1].split("\n}\n", 1)[0]
    declared = set(re.findall(r"^  (?:readonly )?(\w+)(?:<[^>]*>)?[(:]", body, re.M))
    fields = {"options", "welcome", "userId", "sessionId", "userStream", "expiresAt"}
    fields |= {"clockSkewMs", "constructor"}
    assert sorted(declared - fields) == actual["members"]
