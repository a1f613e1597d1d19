# SPDX-License-Identifier: GPL-2.0-or-later
"""Resize a running vhost-blk-pci disk over QMP once the guest asks for it (runs in L1, stdlib only).

    python3 qom_resize.py QMP_SOCKET BACKING DEVICE_ID SHRINK_BYTES GROW_BYTES

Waits (up to 10 minutes) until BACKING starts with the guest's marker ``RESIZE-READY``, then, on
QEMU's QMP socket: qom-set of the device's ``size`` to SHRINK_BYTES (which QEMU must refuse), to
GROW_BYTES, and qom-get of ``size``. Prints one JSON line per step: {"step", "reply"}.
"""

import json
import socket
import sys
import time

MARKER = b"RESIZE-READY"


def wait_marker(backing: str, timeout: float = 600.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(backing, "rb") as f:
            if f.read(len(MARKER)) == MARKER:
                return True
        time.sleep(0.5)
    return False


class Qmp:
    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.file = self.sock.makefile("rw")
        json.loads(self.file.readline())            # the greeting
        self.command("qmp_capabilities")

    def command(self, name: str, **arguments) -> dict:
        self.file.write(json.dumps({"execute": name, "arguments": arguments}) + "\n")
        self.file.flush()
        while True:
            reply = json.loads(self.file.readline())
            if "event" not in reply:
                return reply


def main(argv) -> int:
    sock, backing, device, shrink, grow = argv[1], argv[2], argv[3], int(argv[4]), int(argv[5])
    if not wait_marker(backing):
        print(json.dumps({"step": "wait", "reply": {"error": f"no {MARKER.decode()} in {backing}"}}), flush=True)
        return 1
    qmp = Qmp(sock)
    path = f"/machine/peripheral/{device}"
    for step, value in (("shrink", shrink), ("grow", grow)):
        reply = qmp.command("qom-set", path=path, property="size", value=value)
        print(json.dumps({"step": step, "reply": reply}), flush=True)
    print(json.dumps({"step": "get", "reply": qmp.command("qom-get", path=path, property="size")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
