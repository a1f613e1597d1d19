// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vhost-blk: in-kernel virtio-blk data path.
 *
 * Module entry points: parameters, the /dev/vhost-blk misc device and its
 * file operations. Device state and ioctls live in dev.c and vq_ioctl.c.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/miscdevice.h>
#include <linux/fs.h>
#include <linux/compat.h>
#include <linux/seq_file.h>

#include "vblk.h"

#ifndef VHOST_BLK_VERSION
#error "VHOST_BLK_VERSION must come from the VERSION file (see Kbuild)"
#endif

unsigned int vblk_max_queues = 8;
module_param_named(max_queues, vblk_max_queues, uint, 0644);
MODULE_PARM_DESC(max_queues,
		 "Virtqueues per device, 1-64 (default 8); read at open()");

unsigned int vblk_max_inflight = 128;
module_param_named(max_inflight, vblk_max_inflight, uint, 0644);
MODULE_PARM_DESC(max_inflight,
		 "Preallocated requests per queue, i.e. the most requests in flight per queue, 1-1024 (default 128)");

unsigned int vblk_seg_max = 126;
module_param_named(seg_max, vblk_seg_max, uint, 0644);
MODULE_PARM_DESC(seg_max,
		 "Data segments per request reported to the VMM, 1-1024 (default 126)");

unsigned int vblk_max_mem_regions = 64;
module_param_named(max_mem_regions, vblk_max_mem_regions, uint, 0444);
MODULE_PARM_DESC(max_mem_regions,
		 "Regions accepted by VHOST_SET_MEM_TABLE, 1-509 (default 64)");

unsigned int vblk_busyloop_us;
module_param_named(busyloop_us, vblk_busyloop_us, uint, 0644);
MODULE_PARM_DESC(busyloop_us,
		 "Microseconds a queue worker busy-polls for the next kick or completion before it sleeps, 0-10000 (default 0: never); initial value of VHOST_SET_VRING_BUSYLOOP_TIMEOUT, read at open()");

unsigned int vblk_max_devices = 1024;
module_param_named(max_devices, vblk_max_devices, uint, 0644);
MODULE_PARM_DESC(max_devices,
		 "Open /dev/vhost-blk instances with an owner, system-wide (default 1024); VHOST_SET_OWNER beyond it fails with EMFILE");

unsigned int vblk_max_workers = 4096;
module_param_named(max_workers, vblk_max_workers, uint, 0644);
MODULE_PARM_DESC(max_workers,
		 "Queue worker threads, system-wide (default 4096); VHOST_SET_VRING_KICK needing one more fails with ENOSPC");

unsigned int vblk_slow_ops_per_device = 4;
module_param_named(slow_ops_per_device, vblk_slow_ops_per_device, uint, 0644);
MODULE_PARM_DESC(slow_ops_per_device,
		 "FLUSH/DISCARD/WRITE_ZEROES run at a time per device, each on its own thread in the owner's cgroups, 1-16 (default 4; the rest wait in order); read at VHOST_SET_OWNER");

static int vblk_open(struct inode *inode, struct file *f)
{
	struct vblk_dev *dev = vblk_dev_alloc();

	if (!dev)
		return -ENOMEM;
	f->private_data = dev;
	return 0;
}

static int vblk_release(struct inode *inode, struct file *f)
{
	vblk_dev_release(f->private_data);
	return 0;
}

static long vblk_ioctl(struct file *f, unsigned int cmd, unsigned long arg)
{
	return vblk_dev_ioctl(f->private_data, cmd, (void __user *)arg);
}

/* /proc/<pid>/fdinfo/<fd>: which debugfs directory and traces are this fd's */
static void vblk_show_fdinfo(struct seq_file *m, struct file *f)
{
	struct vblk_dev *dev = f->private_data;

	seq_printf(m, "vhost-blk-id:\t%u\n", dev->id);
	seq_printf(m, "vhost-blk-owner:\t%d\n", READ_ONCE(dev->owner_pid));
}

#ifdef CONFIG_COMPAT
static long vblk_compat_ioctl(struct file *f, unsigned int cmd,
			      unsigned long arg)
{
	return vblk_dev_ioctl(f->private_data, cmd, compat_ptr(arg));
}
#endif

static const struct file_operations vblk_fops = {
	.owner		= THIS_MODULE,
	.open		= vblk_open,
	.release	= vblk_release,
	.unlocked_ioctl	= vblk_ioctl,
#ifdef CONFIG_COMPAT
	.compat_ioctl	= vblk_compat_ioctl,
#endif
	.llseek		= noop_llseek,
	.show_fdinfo	= vblk_show_fdinfo,
};

static struct miscdevice vblk_misc = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= VHOST_BLK_DEVICE_NAME,
	.fops	= &vblk_fops,
	.mode	= 0600,
};

static int __init vblk_init(void)
{
	int ret;

	if (!vblk_max_mem_regions || vblk_max_mem_regions > 509) {
		pr_err("max_mem_regions must be 1-509\n");
		return -EINVAL;
	}

	vblk_stats_init();
	ret = misc_register(&vblk_misc);
	if (ret) {
		vblk_stats_exit();
		return ret;
	}

	pr_info("version %s, abi %d\n", VHOST_BLK_VERSION,
		VHOST_BLK_ABI_VERSION);
	return 0;
}

static void __exit vblk_exit(void)
{
	misc_deregister(&vblk_misc);
	vblk_stats_exit();
}

module_init(vblk_init);
module_exit(vblk_exit);

MODULE_VERSION(VHOST_BLK_VERSION);
MODULE_LICENSE("GPL");
MODULE_AUTHOR("vhost-blk fleet");
MODULE_DESCRIPTION("vhost-blk: in-kernel virtio-blk data path (/dev/vhost-blk)");
