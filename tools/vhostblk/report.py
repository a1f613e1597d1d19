# SPDX-License-Identifier: GPL-2.0-or-later
"""Check results: one line per check for humans, or one JSON document."""

import json
import sys
import time


class Reporter:
    def __init__(self, command, as_json=False, stream=None):
        self.command = command
        self.as_json = as_json
        self.stream = stream or sys.stdout
        self.checks = []
        self.info = {}
        self.t0 = time.monotonic()

    def check(self, name, ok, detail=""):
        ok = bool(ok)
        self.checks.append({"name": name, "ok": ok, "detail": str(detail)})
        if not self.as_json:
            print(f"{'PASS' if ok else 'FAIL'} {name}" + (f": {detail}" if detail else ""),
                  file=self.stream, flush=True)
        return ok

    def skip(self, name, why):
        self.checks.append({"name": name, "ok": None, "detail": why})
        if not self.as_json:
            print(f"SKIP {name}: {why}", file=self.stream, flush=True)

    def note(self, key, value):
        self.info[key] = value
        if not self.as_json:
            print(f"INFO {key}: {value}", file=self.stream, flush=True)

    def failed(self):
        return [c for c in self.checks if c["ok"] is False]

    def finish(self):
        passed = sum(1 for c in self.checks if c["ok"] is True)
        skipped = sum(1 for c in self.checks if c["ok"] is None)
        failed = len(self.failed())
        summary = {"passed": passed, "failed": failed, "skipped": skipped,
                   "seconds": round(time.monotonic() - self.t0, 2)}
        if self.as_json:
            json.dump({"command": self.command, "ok": failed == 0, "summary": summary,
                       "info": self.info, "checks": self.checks}, self.stream, indent=1)
            self.stream.write("\n")
        else:
            verdict = "OK" if failed == 0 else "FAILED"
            print(f"{self.command}: {verdict}: {passed} passed, {failed} failed, "
                  f"{skipped} skipped in {summary['seconds']}s", file=self.stream, flush=True)
        return 0 if failed == 0 else 1
