# SPDX-License-Identifier: GPL-2.0-or-later
"""Make ``ansible_collections.vhostblk.fleet`` importable under plain pytest.

ansible-test runs the units from an ansible_collections/vhostblk/fleet tree and
needs nothing.  Run from a plain checkout (``pytest tests/unit`` at the repo
root), this links the checkout into a temporary ansible_collections tree and
puts that tree on sys.path.
"""


import atexit
import os
import shutil
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _collection_parent(repo):
    """The directory holding ansible_collections/, if the repo already sits in one."""
    fleet = os.path.realpath(repo)
    namespace = os.path.dirname(fleet)
    collections = os.path.dirname(namespace)
    if (os.path.basename(fleet), os.path.basename(namespace),
            os.path.basename(collections)) == ('fleet', 'vhostblk', 'ansible_collections'):
        return os.path.dirname(collections)
    return None


def _link_collection(repo):
    top = tempfile.mkdtemp(prefix='vhostblk-fleet-pytest-')
    atexit.register(shutil.rmtree, top, True)
    os.makedirs(os.path.join(top, 'ansible_collections', 'vhostblk'))
    os.symlink(os.path.realpath(repo), os.path.join(top, 'ansible_collections', 'vhostblk', 'fleet'))
    return top


def _setup():
    parent = _collection_parent(REPO) or _link_collection(REPO)
    if parent not in sys.path:
        sys.path.insert(0, parent)


_setup()
