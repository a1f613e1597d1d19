// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vhost-blk: attaching a backing file or block device (VHOST_BLK_SET_BACKEND):
 * what is accepted, and the facts GET_INFO reports about it (size, block
 * sizes, which of DISCARD / WRITE_ZEROES it serves and their limits).
 * I/O on it is in io.c and work.c.
 */
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/blkdev.h>
#include <linux/slab.h>
#include <linux/magic.h>

#include "vblk.h"

#ifndef CONFIGFS_MAGIC
#define CONFIGFS_MAGIC		0x62656570
#endif
#ifndef FUSECTL_SUPER_MAGIC
#define FUSECTL_SUPER_MAGIC	0x65735543
#endif

/*
 * Filesystems whose regular files are kernel interfaces, not storage: reading
 * or writing them as a disk would act on the kernel with the module's
 * calling pattern (and the opener's rights). Refused with EINVAL.
 */
static const unsigned long vblk_pseudo_fs[] = {
	PROC_SUPER_MAGIC, SYSFS_MAGIC, DEBUGFS_MAGIC, TRACEFS_MAGIC,
	SECURITYFS_MAGIC, SELINUX_MAGIC, SMACK_MAGIC, AAFS_MAGIC,
	CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, RDTGROUP_SUPER_MAGIC,
	BPF_FS_MAGIC, CONFIGFS_MAGIC, EFIVARFS_MAGIC, PSTOREFS_MAGIC,
	BINFMTFS_MAGIC, FUSECTL_SUPER_MAGIC, NSFS_MAGIC, ANON_INODE_FS_MAGIC,
	BINDERFS_SUPER_MAGIC, DEVPTS_SUPER_MAGIC, SECRETMEM_MAGIC,
	PIPEFS_MAGIC, SOCKFS_MAGIC, BDEVFS_MAGIC, DMA_BUF_MAGIC,
};

static bool vblk_pseudo_fs_file(struct inode *inode)
{
	unsigned long magic = inode->i_sb->s_magic;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(vblk_pseudo_fs); i++)
		if (magic == vblk_pseudo_fs[i])
			return true;
	return false;
}

/* Discard / write-zeroes limits: whole u32 segments, in units of @gran bytes. */
static u32 vblk_max_sectors(u32 gran)
{
	return round_down(U32_MAX, max_t(u32, gran >> VBLK_SECTOR_SHIFT, 1));
}

static void vblk_backend_bdev_limits(struct vblk_backend *be,
				     struct block_device *bdev, bool ro)
{
	be->info_flags |= VHOST_BLK_INFO_F_BLKDEV;
	be->blk_size = bdev_logical_block_size(bdev);
	be->phys_blk_size = bdev_physical_block_size(bdev);
	be->opt_io_size = bdev_io_opt(bdev);
	if (ro)
		return;
	if (bdev_max_discard_sectors(bdev)) {
		be->info_flags |= VHOST_BLK_INFO_F_DISCARD;
		be->discard_granularity = max(bdev_discard_granularity(bdev),
					      be->blk_size);
		be->max_discard_sectors = min_t(u64, bdev_max_discard_sectors(bdev),
						vblk_max_sectors(be->blk_size));
	}
	/* blkdev_issue_zeroout() writes zeroes where the device cannot */
	be->info_flags |= VHOST_BLK_INFO_F_WRITE_ZEROES;
	be->max_write_zeroes_sectors = bdev_write_zeroes_sectors(bdev) ?:
				       vblk_max_sectors(be->blk_size);
}

/*
 * A file: block sizes of the filesystem's device where it has one (else
 * 512 / none); O_DIRECT needs the device's logical block alignment.
 * Holes are punched in filesystem blocks.
 */
static void vblk_backend_file_limits(struct vblk_backend *be,
				     struct file *file, bool ro)
{
	struct super_block *sb = file_inode(file)->i_sb;
	u32 gran = max_t(u32, sb->s_blocksize, 512);

	if (sb->s_bdev) {
		if (file->f_flags & O_DIRECT)
			be->blk_size = bdev_logical_block_size(sb->s_bdev);
		be->phys_blk_size = bdev_physical_block_size(sb->s_bdev);
		be->opt_io_size = bdev_io_opt(sb->s_bdev);
	}
	be->phys_blk_size = max(be->phys_blk_size, be->blk_size);
	if (ro || !file->f_op->fallocate)
		return;
	be->info_flags |= VHOST_BLK_INFO_F_DISCARD |
			  VHOST_BLK_INFO_F_WRITE_ZEROES;
	be->discard_granularity = gran;
	be->max_discard_sectors = vblk_max_sectors(gran);
	be->max_write_zeroes_sectors = vblk_max_sectors(gran);
}

struct vblk_backend *vblk_backend_open(int fd, u32 flags, long *err)
{
	bool ro = flags & VHOST_BLK_BACKEND_F_READONLY;
	struct vblk_backend *be;
	struct inode *inode, *host;
	struct file *file;

	file = fget(fd);
	if (!file) {
		*err = -EBADF;
		return NULL;
	}
	inode = file_inode(file);
	host = file->f_mapping->host;	/* the bdev inode for block devices */

	*err = -EINVAL;
	if (!S_ISREG(inode->i_mode) && !S_ISBLK(inode->i_mode))
		goto err_put;
	if (vblk_pseudo_fs_file(inode))
		goto err_put;
	*err = -EBADF;
	if (!(file->f_mode & FMODE_READ) || !(file->f_mode & FMODE_CAN_READ) ||
	    !file->f_op->read_iter)
		goto err_put;
	if (!ro && (!(file->f_mode & FMODE_WRITE) ||
		    !(file->f_mode & FMODE_CAN_WRITE) || !file->f_op->write_iter))
		goto err_put;
	/* O_APPEND would move every guest write to the end of the file */
	*err = -EINVAL;
	if (!ro && (file->f_flags & O_APPEND))
		goto err_put;

	*err = -ENOMEM;
	be = kzalloc(sizeof(*be), GFP_KERNEL_ACCOUNT);
	if (!be)
		goto err_put;

	be->file = file;
	be->capacity = i_size_read(host) >> VBLK_SECTOR_SHIFT;
	be->blk_size = 512;
	be->info_flags = VHOST_BLK_INFO_F_BACKEND;
	atomic64_set(&be->wgen, 1);	/* the first FLUSH syncs (flush.c) */
	if (ro)
		be->info_flags |= VHOST_BLK_INFO_F_READONLY;
	if (file->f_flags & O_DIRECT)
		be->info_flags |= VHOST_BLK_INFO_F_DIRECT;

	if (S_ISBLK(inode->i_mode)) {
		if (!ro && bdev_read_only(I_BDEV(host))) {
			*err = -EROFS;
			goto err_free;
		}
		vblk_backend_bdev_limits(be, I_BDEV(host), ro);
	} else {
		vblk_backend_file_limits(be, file, ro);
	}
	return be;

err_free:
	kfree(be);
err_put:
	fput(file);
	return NULL;
}

void vblk_backend_put(struct vblk_backend *be)
{
	fput(be->file);
	kfree(be);
}
