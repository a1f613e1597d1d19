# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright: (c) 2026, vhost-blk fleet contributors
"""A vhost-blk-user@ back-end configuration with one more daemon option."""

from ansible.errors import AnsibleFilterError
from ansible_collections.vhostblk.fleet.plugins.module_utils.vhostblk_backend_service import conf_with_option
from ansible_collections.vhostblk.fleet.plugins.module_utils.vhostblk_domain import VhostBlkError

DOCUMENTATION = r"""
name: backend_conf_with_option
short_description: A vhost-blk-user back-end configuration with one more daemon option
description:
  - Takes the text of C(/etc/vhost-blk/user/INSTANCE.conf) as M(vhostblk.fleet.disk) writes it and returns
    it with a daemon option added to C(OPTIONS), once (an option already there is not added again); the
    rest of the file is unchanged.
  - The drain hook (C(playbooks/tasks/drain_live_migrate.yml)) gives the destination of a live migration
    the source's configuration with C(--shared) this way.
  - A file without the module's marker line, or an option that does not start with C(--) or holds white
    space, quotes, C(\), C($) or C(`), fails.
options:
  _input:
    description: Text of the configuration file.
    type: str
    required: true
  option:
    description: The daemon option, for example C(--shared).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: The peer's back end of a migrating disk does not lock the shared backing
  ansible.builtin.copy:
    content: "{{ source_conf.content | b64decode | vhostblk.fleet.backend_conf_with_option('--shared') }}"
    dest: /etc/vhost-blk/user/vm1-vblk0.conf
    mode: "0644"
"""

RETURN = r"""
_value:
  description: The configuration text with the option in C(OPTIONS).
  type: str
"""


def backend_conf_with_option(text, option):
    try:
        return conf_with_option(text, option)
    except VhostBlkError as exc:
        raise AnsibleFilterError(f'backend_conf_with_option: {exc}') from None


class FilterModule:
    def filters(self):
        return {'backend_conf_with_option': backend_conf_with_option}
