# SPDX-License-Identifier: GPL-2.0-or-later


import pytest
from ansible_collections.vhostblk.fleet.plugins.module_utils.vhostblk_image import (
    detect_format,
    probe_image,
)

QCOW2_V3 = b'QFI\xfb\x00\x00\x00\x03' + b'\x00' * 504
VDI = b'<<< Oracle VM VirtualBox Disk Image >>>\n'.ljust(0x40, b'\x00') + b'\x7f\x10\xda\xbe'


@pytest.mark.parametrize('header, expected', [
    (QCOW2_V3, 'qcow2'),
    (b'QFI\xfb\x00\x00\x00\x01', 'qcow2'),
    (b'QED\x00' + b'\x00' * 60, 'qed'),
    (b'KDMV\x01\x00\x00\x00', 'vmdk'),
    (b'COWD\x01\x00\x00\x00', 'vmdk'),
    (b'# Disk DescriptorFile\nversion=1\n', 'vmdk'),
    (VDI, 'vdi'),
    (b'vhdxfile' + b'\x00' * 64, 'vhdx'),
    (b'conectix\x00\x00\x00\x02', 'vpc'),
    (b'LUKS\xba\xbe\x00\x02', 'luks'),
    (b'WithoutFreeSpace', 'parallels'),
    (b'\x00' * 512, 'raw'),
    (b'\xeb\x63\x90' + b'\x00' * 507 + b'\x55\xaa', 'raw'),   # an MBR boot sector
    (b'', 'raw'),
    (b'QFI', 'raw'),                                         # too short to be qcow2
    (b'\x00' * 0x40 + b'\x7f\x10\xda', 'raw'),               # truncated VDI signature
])
def test_detect_format(header, expected):
    assert detect_format(header) == expected


def test_probe_raw_file(tmp_path):
    image = tmp_path / 'disk.img'
    image.write_bytes(b'\x00' * 4096)
    assert probe_image(str(image)) == {'kind': 'file', 'size': 4096, 'format': 'raw'}


def test_probe_qcow2_file(tmp_path):
    image = tmp_path / 'disk.qcow2'
    image.write_bytes(QCOW2_V3)
    assert probe_image(str(image))['format'] == 'qcow2'


def test_probe_directory_is_other(tmp_path):
    assert probe_image(str(tmp_path)) == {'kind': 'other', 'size': None, 'format': None}


def test_probe_missing_raises(tmp_path):
    with pytest.raises(OSError):
        probe_image(str(tmp_path / 'nope'))
