/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel-version shims for basic_target.
 *
 * Every difference between the kernels we build for (Debian's 5.10, 6.1,
 * 6.12 and the newest from trixie-backports) lives here and nowhere
 * else; basic_target.c is written against the newest API.
 */
#ifndef BASIC_TARGET_COMPAT_H
#define BASIC_TARGET_COMPAT_H

#include <linux/version.h>
#include <linux/blkdev.h>
#include <linux/device-mapper.h>
#include <linux/fs.h>

/*
 * STATUSTYPE_IMA and DMEMIT_TARGET_NAME_VERSION arrived in 5.15 with
 * IMA measurement of device-mapper tables; before that a target has no
 * IMA form to emit, so the status hook leaves that case out.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 15, 0)
#define BASIC_HAVE_STATUSTYPE_IMA 1
#else
#define BASIC_HAVE_STATUSTYPE_IMA 0
#endif

/* bdev_nr_sectors() arrived in 5.15; before it the size is the inode's. */
#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 15, 0)
static inline sector_t bdev_nr_sectors(struct block_device *bdev)
{
	return i_size_read(bdev->bd_inode) >> SECTOR_SHIFT;
}
#endif

/*
 * 6.16 passed the ioctl itself (cmd, arg) and a *forward flag to
 * .prepare_ioctl, so that a target may answer an ioctl instead of
 * handing it down.  basic_target always hands it down; this is the tail
 * of the parameter list the kernel's dm_prepare_ioctl_fn has.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 16, 0)
#define BASIC_PREPARE_IOCTL_ARGS , unsigned int cmd, unsigned long arg, bool *forward
#else
#define BASIC_PREPARE_IOCTL_ARGS
#endif

/*
 * module_dm() arrived in 6.3 together with the move of the
 * "already registered" error message into dm_register_target(); before
 * that every target logged its own registration failure.  Provide the
 * macro for older kernels, logging the failure the way the newer core
 * does, so a failed insmod leaves the same trace in the kernel log.
 */
#ifndef module_dm
#define module_dm(name)							\
static int __init dm_##name##_init(void)				\
{									\
	int r = dm_register_target(&(name##_target));			\
									\
	if (r < 0)							\
		DMERR("register failed %d", r);				\
	return r;							\
}									\
module_init(dm_##name##_init)						\
static void __exit dm_##name##_exit(void)				\
{									\
	dm_unregister_target(&(name##_target));				\
}									\
module_exit(dm_##name##_exit)
#endif

#endif /* BASIC_TARGET_COMPAT_H */
