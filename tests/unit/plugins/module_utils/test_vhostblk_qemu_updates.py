# SPDX-License-Identifier: GPL-2.0-or-later
"""apt-cache policy parsing on real output, and QEMU processes whose binary was replaced.

The policy samples in fixtures/apt-policy are real `LC_ALL=C apt-cache policy qemu-system-x86`
output: debian12-host.txt from the Debian 12 development host (no patched build; trixie and
backports at 100), the others from tests/host/test_aptpin.py's throwaway apt root with the
repository's pin (stand-in packages, Debian's version numbers).
"""


import os
import shutil
import subprocess
import time

import pytest
from ansible_collections.vhostblk.fleet.plugins.module_utils import vhostblk_qemu_updates as upd

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'fixtures', 'apt-policy')
OURS = '1:7.2+dfsg-7+deb12u18+vhostblk3'
BINNMU = '1:7.2+dfsg-7+deb12u18+b3'
SECURITY = '1:7.2+dfsg-7+deb12u19'
REBUILT = SECURITY + '+vhostblk4'


def sample(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def test_parse_the_debian12_host():
    policy = upd.parse_policy(sample('debian12-host.txt'))
    assert policy['installed'] == BINNMU and policy['candidate'] == BINNMU
    assert [(v['version'], v['priority'], v['installed']) for v in policy['versions']] == [
        ('1:10.0.13+ds-0+deb13u1', 100, False),
        ('1:10.0.2+ds-2+deb13u1~bpo12+1', 100, False),
        (BINNMU, 500, True),
        ('1:7.2+dfsg-7+deb12u15', 500, False),
    ]
    assert policy['versions'][2]['sources'] == [
        {'priority': 500, 'source': 'http://deb.debian.org/debian bookworm/main amd64 Packages'},
        {'priority': 100, 'source': '/var/lib/dpkg/status'},
    ]


def test_no_patched_build_known():
    facts = upd.update_facts(upd.parse_policy(sample('debian12-host.txt')))
    # trixie's and backports' 10.0 are higher versions but at 100: apt would not choose them
    assert facts == {'installed_version': BINNMU, 'candidate_version': BINNMU, 'patched_installed': False,
                     'patched_available': None, 'debian_candidate': BINNMU, 'newer_upstream': None}


@pytest.mark.parametrize('name, expected', [
    ('patched-candidate.txt',
     {'installed_version': None, 'candidate_version': OURS, 'patched_installed': False,
      'patched_available': OURS, 'debian_candidate': BINNMU, 'newer_upstream': False}),
    ('patched-installed-debian-newer.txt',
     {'installed_version': OURS, 'candidate_version': SECURITY, 'patched_installed': True,
      'patched_available': OURS, 'debian_candidate': SECURITY, 'newer_upstream': True}),
    ('debian-installed-rebuild-available.txt',
     {'installed_version': SECURITY, 'candidate_version': REBUILT, 'patched_installed': False,
      'patched_available': REBUILT, 'debian_candidate': SECURITY, 'newer_upstream': False}),
])
def test_update_facts_with_the_pin(name, expected):
    assert upd.update_facts(upd.parse_policy(sample(name))) == expected


def test_a_debian_version_above_an_older_patched_one_that_is_not_installed():
    text = sample('patched-installed-debian-newer.txt').replace(
        f'Installed: {OURS}', 'Installed: (none)').replace(f' *** {OURS}', f'     {OURS}')
    facts = upd.update_facts(upd.parse_policy(text))
    assert facts['installed_version'] is None and facts['patched_available'] == OURS
    assert facts['newer_upstream'] is True


def test_package_facts_reports_what_apt_could_not_tell():
    facts = upd.package_facts(lambda argv: (0, sample('patched-candidate.txt'), ''))
    assert facts['policy_error'] is None and facts['patched_available'] == OURS
    unknown = upd.package_facts(lambda argv: (0, '', 'N: Unable to locate package qemu-system-x86\n'))
    assert unknown['policy_error'] == 'apt knows no package qemu-system-x86'
    assert unknown['installed_version'] is None and unknown['newer_upstream'] is None
    missing = upd.package_facts(lambda argv: (127, '', 'apt-cache: command not found'))
    assert missing['policy_error'] == 'apt-cache: command not found'
    calls = []
    upd.package_facts(lambda argv: calls.append(argv) or (0, '', ''))
    assert calls == [['apt-cache', 'policy', 'qemu-system-x86']]


# ---- stale QEMU processes ------------------------------------------------------------------

def guest_arg(pid):
    with open(f'/proc/{pid}/cmdline', 'rb') as handle:
        return b'guest=vm1' in handle.read()


@pytest.fixture
def fake_qemu(tmp_path):
    """A running process whose binary is a copy of the shell named qemu-system-x86_64, with
    libvirt's -name argument; it waits on its stdin."""
    binary = tmp_path / 'bin' / 'qemu-system-x86_64'
    binary.parent.mkdir()
    shutil.copy2(shutil.which('dash') or '/bin/sh', binary)
    proc = subprocess.Popen([str(binary), '-c', 'read line', '-name', 'guest=vm1,debug-threads=on'],
                            stdin=subprocess.PIPE)
    deadline = time.monotonic() + 10
    # exec sets the exe link before the new command line: wait for both
    while not (os.readlink(f'/proc/{proc.pid}/exe') == str(binary) and guest_arg(proc.pid)):
        assert time.monotonic() < deadline, 'the fake QEMU did not start'
        time.sleep(0.01)
    yield proc, binary
    proc.kill()
    proc.wait()


def test_a_running_qemu_whose_binary_was_replaced(fake_qemu):
    proc, binary = fake_qemu
    assert proc.pid not in [p['pid'] for p in upd.stale_processes()], 'its binary is still the one on disk'
    new = binary.with_name('.qemu-system-x86_64.new')  # as dpkg does: write beside, rename over
    shutil.copy2(binary, new)
    os.replace(new, binary)
    stale = [p for p in upd.stale_processes() if p['pid'] == proc.pid]
    assert stale == [{'pid': proc.pid, 'exe': str(binary), 'guest': 'vm1', 'reason': 'deleted'}]


def test_stale_processes_in_a_tree(tmp_path):
    """A /proc tree: a deleted binary, a path that names another file now, an up-to-date one,
    something that is not QEMU."""
    running = tmp_path / 'running' / 'qemu-system-x86_64'
    running.parent.mkdir()
    running.write_text('old build')
    root = tmp_path / 'root'
    on_disk = root / str(running).lstrip('/')
    on_disk.parent.mkdir(parents=True)
    on_disk.write_text('new build')
    current = tmp_path / 'running' / 'qemu-system-i386'
    current.write_text('same build')
    os.link(current, root / str(current).lstrip('/'))  # the same file under root

    def proc(pid, exe, cmdline):
        (root / 'proc' / pid).mkdir(parents=True)
        os.symlink(exe, root / 'proc' / pid / 'exe')
        (root / 'proc' / pid / 'cmdline').write_bytes(b'\0'.join(arg.encode() for arg in cmdline) + b'\0')

    proc('200', '/usr/bin/qemu-system-x86_64 (deleted)', ['qemu-system-x86_64', '-name', 'guest=vm2,debug-threads=on'])
    proc('31', str(running), ['qemu-system-x86_64', '-name', 'vm3'])
    proc('40', str(current), ['qemu-system-i386', '-name', 'guest=vm4'])
    proc('50', '/usr/sbin/libvirtd (deleted)', ['libvirtd'])
    (root / 'proc' / 'self').mkdir()
    assert upd.stale_processes(str(root)) == [
        {'pid': 31, 'exe': str(running), 'guest': 'vm3', 'reason': 'replaced'},
        {'pid': 200, 'exe': '/usr/bin/qemu-system-x86_64', 'guest': 'vm2', 'reason': 'deleted'},
    ]
