// SPDX-License-Identifier: GPL-2.0
/*
 * basic_target: a pass-through device-mapper target that remaps every bio
 * onto one underlying device at a fixed offset (like dm-linear) and counts
 * the data it passes, so that pydevmapper's tests have an out-of-tree
 * target whose table, status and message handling they can check.
 *
 * Copyright (C) pydevmapper developers
 */

#include <linux/device-mapper.h>

#include <linux/module.h>
#include <linux/init.h>
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/ctype.h>
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/atomic.h>

#include "compat.h"

#define DM_MSG_PREFIX "basic_target"

struct basic_c {
	struct dm_dev *dev;
	sector_t start;

	/* Data bios seen by map(), see basic_status() for the format. */
	atomic64_t reads;
	atomic64_t writes;
	atomic64_t read_sectors;
	atomic64_t write_sectors;
};

static void basic_reset_counters(struct basic_c *bc)
{
	atomic64_set(&bc->reads, 0);
	atomic64_set(&bc->writes, 0);
	atomic64_set(&bc->read_sectors, 0);
	atomic64_set(&bc->write_sectors, 0);
}

/*
 * Parse a sector offset strictly: decimal digits only, no sign, no
 * leading blanks, no trailing junk, no overflow.  Anything else would not
 * survive the STATUSTYPE_TABLE round trip unchanged.
 */
static int basic_parse_offset(const char *arg, sector_t *offset)
{
	unsigned long long tmp;

	if (!isdigit(arg[0]))
		return -EINVAL;
	if (kstrtoull(arg, 10, &tmp))
		return -EINVAL;
	*offset = tmp;
	return 0;
}

/*
 * Construct a basic_target mapping:
 *
 *   <start> <len> basic_target <device> <offset>
 *
 *   <device>  the underlying block device, as a path (/dev/loop0) or as
 *             major:minor (7:0)
 *   <offset>  the sector on <device> that sector <start> of the mapped
 *             device maps to; decimal, 512-byte sectors
 *
 * Exactly two arguments.  The table status re-emits them as
 * "<major:minor> <offset>", which the constructor accepts again.
 */
static int basic_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct basic_c *bc;
	sector_t start;
	int r;

	if (argc != 2) {
		ti->error = "Invalid argument count";
		return -EINVAL;
	}

	if (basic_parse_offset(argv[1], &start)) {
		ti->error = "Invalid device offset";
		return -EINVAL;
	}

	bc = kzalloc(sizeof(*bc), GFP_KERNEL);
	if (!bc) {
		ti->error = "Cannot allocate context";
		return -ENOMEM;
	}
	bc->start = start;
	basic_reset_counters(bc);

	/* Keep dm_get_device()'s errno: EBUSY and ENXIO tell users more. */
	r = dm_get_device(ti, argv[0], dm_table_get_mode(ti->table), &bc->dev);
	if (r) {
		ti->error = "Device lookup failed";
		goto bad;
	}

	ti->num_flush_bios = 1;
	ti->num_discard_bios = 1;
	ti->num_secure_erase_bios = 1;
	ti->num_write_zeroes_bios = 1;
	ti->private = bc;
	return 0;

bad:
	kfree(bc);
	return r;
}

static void basic_dtr(struct dm_target *ti)
{
	struct basic_c *bc = ti->private;

	dm_put_device(ti, bc->dev);
	kfree(bc);
}

static int basic_map(struct dm_target *ti, struct bio *bio)
{
	struct basic_c *bc = ti->private;
	unsigned int sectors = bio_sectors(bio);

	bio_set_dev(bio, bc->dev->bdev);
	/* An empty flush carries no sector: leave it alone. */
	if (sectors || !(bio->bi_opf & REQ_PREFLUSH))
		bio->bi_iter.bi_sector =
			bc->start + dm_target_offset(ti, bio->bi_iter.bi_sector);

	if (sectors) {
		switch (bio_op(bio)) {
		case REQ_OP_READ:
			atomic64_inc(&bc->reads);
			atomic64_add(sectors, &bc->read_sectors);
			break;
		case REQ_OP_WRITE:
			atomic64_inc(&bc->writes);
			atomic64_add(sectors, &bc->write_sectors);
			break;
		default:
			break;
		}
	}

	return DM_MAPIO_REMAPPED;
}

/* "<reads> <writes> <read_sectors> <write_sectors>", all decimal. */
static void basic_emit_counters(struct basic_c *bc, char *result,
				unsigned int maxlen)
{
	unsigned int sz = 0;

	DMEMIT("%llu %llu %llu %llu",
	       (unsigned long long)atomic64_read(&bc->reads),
	       (unsigned long long)atomic64_read(&bc->writes),
	       (unsigned long long)atomic64_read(&bc->read_sectors),
	       (unsigned long long)atomic64_read(&bc->write_sectors));
}

/*
 * Status:
 *
 *   STATUSTYPE_INFO   <reads> <writes> <read_sectors> <write_sectors>
 *                     READ and WRITE bios carrying data, and their
 *                     512-byte sectors, as mapped by this target since
 *                     the table was loaded or the counters were last
 *                     reset (message "reset").  Bios are counted after
 *                     dm core has split them at target boundaries;
 *                     flushes, discards and write-zeroes are not counted.
 *   STATUSTYPE_TABLE  <major:minor> <offset>, the constructor arguments.
 *   STATUSTYPE_IMA    the dm-linear form, for IMA measurement.
 */
static void basic_status(struct dm_target *ti, status_type_t type,
			 unsigned int status_flags, char *result,
			 unsigned int maxlen)
{
	struct basic_c *bc = ti->private;
	unsigned int sz = 0;

	switch (type) {
	case STATUSTYPE_INFO:
		basic_emit_counters(bc, result, maxlen);
		break;
	case STATUSTYPE_TABLE:
		DMEMIT("%s %llu", bc->dev->name, (unsigned long long)bc->start);
		break;
#if BASIC_HAVE_STATUSTYPE_IMA
	case STATUSTYPE_IMA:
		DMEMIT_TARGET_NAME_VERSION(ti->type);
		DMEMIT(",device_name=%s,start=%llu;", bc->dev->name,
		       (unsigned long long)bc->start);
		break;
#endif
	}
}

/*
 * Messages (dmsetup message <dev> 0 <msg>):
 *
 *   reset   zero the counters
 *   stats   return the counters, in the STATUSTYPE_INFO format
 *   event   raise a dm event (bumps the device's event number, wakes
 *           DM_DEV_WAIT and pollers), so user space can test event
 *           handling without a target that fills up or fails
 */
static int basic_message(struct dm_target *ti, unsigned int argc, char **argv,
			 char *result, unsigned int maxlen)
{
	struct basic_c *bc = ti->private;

	if (argc == 1 && !strcmp(argv[0], "reset")) {
		basic_reset_counters(bc);
		return 0;
	}

	if (argc == 1 && !strcmp(argv[0], "event")) {
		dm_table_event(ti->table);
		return 0;
	}

	if (argc == 1 && !strcmp(argv[0], "stats")) {
		basic_emit_counters(bc, result, maxlen);
		return 1;	/* result holds output: DM_DATA_OUT_FLAG */
	}

	DMWARN("Unrecognised message received: %s (%u argument%s)",
	       argc ? argv[0] : "", argc, argc == 1 ? "" : "s");
	return -EINVAL;
}

static int basic_prepare_ioctl(struct dm_target *ti, struct block_device **bdev
			       BASIC_PREPARE_IOCTL_ARGS)
{
	struct basic_c *bc = ti->private;
	struct dm_dev *dev = bc->dev;

	*bdev = dev->bdev;

	/* Only pass ioctls through if the device sizes match exactly. */
	if (bc->start || ti->len != bdev_nr_sectors(dev->bdev))
		return 1;
	return 0;
}

static int basic_iterate_devices(struct dm_target *ti,
				 iterate_devices_callout_fn fn, void *data)
{
	struct basic_c *bc = ti->private;

	return fn(ti, bc->dev, bc->start, ti->len, data);
}

static struct target_type basic_target = {
	.name		 = "basic_target",
	.version	 = {1, 0, 0},
	/* map() never sleeps: the atomic64 counters are all it adds. */
	.features	 = DM_TARGET_NOWAIT,
	.module		 = THIS_MODULE,
	.ctr		 = basic_ctr,
	.dtr		 = basic_dtr,
	.map		 = basic_map,
	.status		 = basic_status,
	.message	 = basic_message,
	.prepare_ioctl	 = basic_prepare_ioctl,
	.iterate_devices = basic_iterate_devices,
};
module_dm(basic);

MODULE_DESCRIPTION(DM_NAME " pass-through target with I/O counters");
MODULE_AUTHOR("pydevmapper developers");
MODULE_LICENSE("GPL");
