# SPDX-License-Identifier: GPL-2.0-or-later
"""Driver side of a virtio 1.x split virtqueue living in GuestMemory."""

import struct

from .virtio import (
    AVAIL_F_NO_INTERRUPT,
    DESC,
    DESC_F_INDIRECT,
    DESC_F_NEXT,
    DESC_F_WRITE,
    DESC_SIZE,
    USED_F_NO_NOTIFY,
    ring_sizes,
    vring_need_event,
)

_USED_ELEM = struct.Struct("<II")


class QueueFull(Exception):
    pass


class SplitQueue:
    """A split ring of ``num`` entries (power of two).

    Index bookkeeping is free-running u16 like the spec: ``avail_idx`` is the
    next avail index to publish, ``last_used`` the next used index to consume.
    ``add`` publishes immediately; ``need_kick`` says whether the device must
    be notified about everything published since the previous call.
    """

    def __init__(self, mem, num, event_idx=False, indirect=False, indirect_max=0):
        if num <= 0 or num & (num - 1) or num > 32768:
            raise ValueError(f"queue size {num} is not a power of two <= 32768")
        self.mem = mem
        self.num = num
        self.event_idx = event_idx
        self.indirect = indirect
        dsz, asz, usz = ring_sizes(num)
        self.desc = mem.alloc(dsz, 16)
        self.avail = mem.alloc(asz, 2)
        self.used = mem.alloc(usz, 4096)
        self._m = mem.mm
        self._u16 = mem.u16         # ring indices: one 2-byte access each (GuestMemory.u16)
        self._desc_off = mem.off(self.desc)
        self._avail_off = mem.off(self.avail)
        self._used_off = mem.off(self.used)
        mem.fill(self.desc, dsz)
        mem.fill(self.avail, asz)
        mem.fill(self.used, usz)
        self.indirect_max = indirect_max if indirect else 0
        self.itables = None
        if self.indirect_max:
            # one indirect table per head descriptor, preallocated
            self.itables = mem.alloc(num * self.indirect_max * DESC_SIZE, 16)
        self.reset_state(0)

    def reset_state(self, base):
        """Forget everything in flight; indices restart at ``base``.

        Also initialises used->idx and avail_event in guest memory, as a fresh
        ring has them (vhost devices read used->idx when the queue starts)."""
        self.avail_idx = base & 0xFFFF
        self.last_used = base & 0xFFFF
        self.kick_old = self.avail_idx
        self.free = list(range(self.num - 1, -1, -1))
        self.inflight = {}          # head -> (token, [descriptor indices])
        self._u16[(self._avail_off + 2) // 2] = self.avail_idx
        self._u16[(self._used_off + 2) // 2] = self.last_used
        self._u16[(self._used_off + 4 + 8 * self.num) // 2] = self.avail_idx  # avail_event

    # addresses for VHOST_SET_VRING_ADDR (user-space, not GPA) -------------
    def hva_addrs(self):
        g = self.mem.gpa_to_hva
        return g(self.desc), g(self.used), g(self.avail)

    # raw access (used by the fuzzer and the tests) -------------------------
    def write_desc(self, index, addr, length, flags, nxt):
        DESC.pack_into(self._m, self._desc_off + DESC_SIZE * index,
                       addr & 0xFFFFFFFFFFFFFFFF, length & 0xFFFFFFFF, flags & 0xFFFF, nxt & 0xFFFF)

    def read_desc(self, index):
        return DESC.unpack_from(self._m, self._desc_off + DESC_SIZE * index)

    def push_head(self, head):
        """Put ``head`` in the next avail slot and publish the new avail idx."""
        self._u16[(self._avail_off + 4 + 2 * (self.avail_idx % self.num)) // 2] = head
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        self._u16[(self._avail_off + 2) // 2] = self.avail_idx

    def used_idx(self):
        return self._u16[(self._used_off + 2) // 2]

    def used_flags(self):
        return self._u16[self._used_off // 2]

    def avail_event(self):
        return self._u16[(self._used_off + 4 + 8 * self.num) // 2]

    def set_used_event(self, idx):
        self._u16[(self._avail_off + 4 + 2 * self.num) // 2] = idx & 0xFFFF

    def set_avail_flags(self, flags):
        self._u16[self._avail_off // 2] = flags

    def pop_used_raw(self):
        """Yield (id, len) of every new used element, advancing last_used."""
        end = self.used_idx()
        out = []
        while self.last_used != end:
            out.append(_USED_ELEM.unpack_from(
                self._m, self._used_off + 4 + 8 * (self.last_used % self.num)))
            self.last_used = (self.last_used + 1) & 0xFFFF
        return out

    # managed chains --------------------------------------------------------
    def num_free(self):
        return len(self.free)

    def add(self, bufs, token, use_indirect=None):
        """Queue a chain of (gpa, length, device_writable) buffers. Returns the head."""
        if not bufs:
            raise ValueError("empty chain")
        if use_indirect is None:
            use_indirect = bool(self.itables) and len(bufs) > 1
        if use_indirect:
            if not self.itables or len(bufs) > self.indirect_max:
                raise ValueError("indirect descriptors not available for this chain")
            if not self.free:
                raise QueueFull()
            head = self.free.pop()
            table = self.itables + head * self.indirect_max * DESC_SIZE
            toff = self.mem.off(table)
            last = len(bufs) - 1
            for i, (addr, length, writable) in enumerate(bufs):
                flags = (DESC_F_WRITE if writable else 0) | (DESC_F_NEXT if i < last else 0)
                DESC.pack_into(self._m, toff + DESC_SIZE * i, addr, length, flags,
                               i + 1 if i < last else 0)
            self.write_desc(head, table, len(bufs) * DESC_SIZE, DESC_F_INDIRECT, 0)
            chain = [head]
        else:
            if len(bufs) > len(self.free):
                raise QueueFull()
            chain = [self.free.pop() for _buf in bufs]
            last = len(bufs) - 1
            for i, (addr, length, writable) in enumerate(bufs):
                flags = (DESC_F_WRITE if writable else 0) | (DESC_F_NEXT if i < last else 0)
                self.write_desc(chain[i], addr, length, flags, chain[i + 1] if i < last else 0)
            head = chain[0]
        self.inflight[head] = (token, chain)
        self.push_head(head)
        return head

    def need_kick(self):
        """Must the device be notified of the entries published since the last call?"""
        new, old = self.avail_idx, self.kick_old
        self.kick_old = new
        if new == old:
            return False
        if self.event_idx:
            return vring_need_event(self.avail_event(), new, old)
        return not self.used_flags() & USED_F_NO_NOTIFY

    def get_used(self):
        """Completed chains as (token, used_len); frees their descriptors."""
        done = []
        for head, length in self.pop_used_raw():
            entry = self.inflight.pop(head, None)
            if entry is None:
                raise RuntimeError(f"device returned head {head} that is not in flight")
            token, chain = entry
            self.free.extend(chain)
            done.append((token, length))
        return done

    def enable_cb(self):
        """Ask for an interrupt at the next completion; True if some are pending already."""
        if self.event_idx:
            self.set_used_event(self.last_used)
        else:
            self.set_avail_flags(0)
        return self.used_idx() != self.last_used

    def disable_cb(self):
        if not self.event_idx:
            self.set_avail_flags(AVAIL_F_NO_INTERRUPT)
        # with EVENT_IDX the device only signals when used_event is crossed
