# SPDX-License-Identifier: GPL-2.0-or-later

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.vhostblk.fleet.plugins.filter.backend_conf_with_option import backend_conf_with_option
from ansible_collections.vhostblk.fleet.plugins.module_utils.vhostblk_backend_service import (
    conf_owner,
    conf_values,
    render_conf,
)


def test_option_joins_the_existing_ones():
    conf = render_conf('vm1', 'vblk0', '/dev/disk/by-id/virtio-data', ['--serial', 'vm1-data', '--queues', '2'])
    out = backend_conf_with_option(conf, '--shared')
    assert conf_values(out)['OPTIONS'].split() == ['--serial', 'vm1-data', '--queues', '2', '--shared']
    assert conf_values(out)['BACKING'] == '/dev/disk/by-id/virtio-data'
    assert conf_owner(out) == ('vm1', 'vblk0')  # still the disk module's file for the same disk
    assert out.count('OPTIONS=') == 1 and out.endswith('\n')


def test_conf_without_options_gets_an_options_line():
    out = backend_conf_with_option(render_conf('vm 1', 'vblk0', '/srv/my disk.raw'), '--shared')
    assert conf_values(out) == {'BACKING': '/srv/my disk.raw', 'OPTIONS': '--shared'}
    assert conf_owner(out) == ('vm 1', 'vblk0')


def test_option_already_there_is_not_added_again():
    once = backend_conf_with_option(render_conf('vm1', 'vblk0', '/srv/a.raw', ['--queues', '2']), '--shared')
    assert backend_conf_with_option(once, '--shared') == once


@pytest.mark.parametrize('text, option, message', [
    ('BACKING=/srv/a.raw\n', '--shared', 'no marker line'),
    (render_conf('vm1', 'vblk0', '/srv/a.raw'), 'shared', 'must start with --'),
    (render_conf('vm1', 'vblk0', '/srv/a.raw'), '--cache none', 'no white space'),
    (render_conf('vm1', 'vblk0', '/srv/a.raw'), '--x=$HOME', 'no white space'),
])
def test_bad_input_fails_clearly(text, option, message):
    with pytest.raises(AnsibleFilterError, match=message):
        backend_conf_with_option(text, option)
