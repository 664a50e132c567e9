/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel-version shims for basic_target.
 *
 * Every difference between the kernels we build for (Debian 6.1 and
 * 6.12) lives here and nowhere else; basic_target.c is written against
 * the newest API.
 */
#ifndef BASIC_TARGET_COMPAT_H
#define BASIC_TARGET_COMPAT_H

#include <linux/version.h>
#include <linux/device-mapper.h>

/*
 * STATUSTYPE_IMA (5.15) is handled unconditionally in the status hook;
 * older kernels would fail to compile there with a less useful error.
 */
#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 15, 0)
#error "basic_target needs Linux 5.15 or newer (STATUSTYPE_IMA)"
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
