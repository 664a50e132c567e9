// SPDX-License-Identifier: GPL-2.0
/*
 * dm_ioctl_floor: the cost of raw device-mapper ioctls from C, as a floor
 * for pydevmapper's benchmarks.  One control fd and one reused buffer; no
 * libdevmapper, no udev synchronisation.
 *
 *   dm_ioctl_floor version N
 *   dm_ioctl_floor list N
 *   dm_ioctl_floor info NAME N
 *   dm_ioctl_floor table NAME N
 *   dm_ioctl_floor status NAME N
 *   dm_ioctl_floor lifecycle NAME SECTORS N
 *   dm_ioctl_floor message NAME MSG N
 *
 * Prints a JSON list of N per-iteration wall times in seconds
 * (CLOCK_MONOTONIC) on stdout; errors go to stderr with exit status 1.
 * lifecycle creates NAME, loads "0 SECTORS zero", resumes and removes it,
 * N times.  message sends MSG to the target at sector 0.
 *
 * Build: make -C csrc floor
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <linux/dm-ioctl.h>

#define CONTROL_PATH "/dev/mapper/control"
#define INITIAL_BUFFER_SIZE (16 * 1024)

/*
 * udev flags from libdevmapper.h (userspace convention, not kernel ABI):
 * they ride in the upper 16 bits of event_nr, the lower 16 bits being the
 * udev cookie.  Cookie 0 means nobody waits for udev; the flags tell the
 * udev rules to skip the device, so udev does not hold it open and make
 * DM_DEV_REMOVE fail with EBUSY.
 */
#define DM_UDEV_FLAGS_SHIFT 16
#define DM_UDEV_DISABLE_DM_RULES_FLAG 0x0001
#define DM_UDEV_DISABLE_SUBSYSTEM_RULES_FLAG 0x0002
#define DM_UDEV_DISABLE_DISK_RULES_FLAG 0x0004
#define DM_UDEV_DISABLE_OTHER_RULES_FLAG 0x0008
#define NO_UDEV_EVENT_NR                                                    \
	((uint32_t)(DM_UDEV_DISABLE_DM_RULES_FLAG |                         \
		    DM_UDEV_DISABLE_SUBSYSTEM_RULES_FLAG |                  \
		    DM_UDEV_DISABLE_DISK_RULES_FLAG |                       \
		    DM_UDEV_DISABLE_OTHER_RULES_FLAG)                       \
	 << DM_UDEV_FLAGS_SHIFT)

static int control_fd = -1;
static struct dm_ioctl *buf;
static size_t buf_size;

static void die(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("dm_ioctl_floor: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static void grow_buffer(size_t size)
{
	void *p = realloc(buf, size);

	if (!p)
		die("out of memory (%zu bytes)", size);
	buf = p;
	buf_size = size;
}

/*
 * Reset the header for a new ioctl.  Only the header is cleared: the data
 * area is either written by the caller or by the kernel.  Version 4.0.0
 * is accepted by every 4.x kernel, whatever this host's header says.
 */
static void init_header(const char *name, uint32_t flags)
{
	memset(buf, 0, sizeof(*buf));
	buf->version[0] = DM_VERSION_MAJOR;
	buf->data_size = (uint32_t)buf_size;
	buf->data_start = sizeof(*buf);
	buf->flags = flags;
	if (name)
		strncpy(buf->name, name, sizeof(buf->name) - 1);
}

static const char *cmd_name(unsigned long cmd)
{
	switch (cmd) {
	case DM_VERSION: return "DM_VERSION";
	case DM_LIST_DEVICES: return "DM_LIST_DEVICES";
	case DM_DEV_CREATE: return "DM_DEV_CREATE";
	case DM_DEV_REMOVE: return "DM_DEV_REMOVE";
	case DM_DEV_SUSPEND: return "DM_DEV_SUSPEND";
	case DM_DEV_STATUS: return "DM_DEV_STATUS";
	case DM_TABLE_LOAD: return "DM_TABLE_LOAD";
	case DM_TABLE_STATUS: return "DM_TABLE_STATUS";
	case DM_TARGET_MSG: return "DM_TARGET_MSG";
	default: return "ioctl";
	}
}

/* Issue cmd; the header must be set up.  Returns 0 or -errno. */
static int dm_ioctl_raw(unsigned long cmd)
{
	if (ioctl(control_fd, cmd, buf) < 0)
		return -errno;
	return 0;
}

static void dm_ioctl_or_die(unsigned long cmd, const char *name)
{
	int r = dm_ioctl_raw(cmd);

	if (r)
		die("%s %s: %s", cmd_name(cmd), name ? name : "", strerror(-r));
}

/*
 * A read-only query whose output may not fit: double the buffer and
 * retry while the kernel sets DM_BUFFER_FULL_FLAG.
 */
static void query(unsigned long cmd, const char *name, uint32_t flags)
{
	for (;;) {
		init_header(name, flags);
		dm_ioctl_or_die(cmd, name);
		if (!(buf->flags & DM_BUFFER_FULL_FLAG))
			return;
		grow_buffer(buf_size * 2);
	}
}

static void send_message(const char *name, const char *msg)
{
	struct dm_target_msg *tmsg;
	size_t len = strlen(msg) + 1;
	size_t need = sizeof(*buf) + sizeof(*tmsg) + len;

	for (;;) {
		if (need > buf_size)
			grow_buffer(need);
		init_header(name, 0);
		tmsg = (struct dm_target_msg *)((char *)buf + buf->data_start);
		tmsg->sector = 0;
		/* memcpy past the header: GCC cannot see the flexible array's size. */
		memcpy((char *)tmsg + sizeof(*tmsg), msg, len);
		dm_ioctl_or_die(DM_TARGET_MSG, name);
		if (!(buf->flags & DM_BUFFER_FULL_FLAG))
			return;
		need = buf_size * 2;
	}
}

static void lifecycle_once(const char *name, uint64_t sectors)
{
	struct dm_target_spec *spec;
	int r;

	init_header(name, 0);
	buf->event_nr = NO_UDEV_EVENT_NR;
	dm_ioctl_or_die(DM_DEV_CREATE, name);

	/* One "zero" target with empty parameters: needs no backing device. */
	init_header(name, 0);
	buf->target_count = 1;
	spec = (struct dm_target_spec *)((char *)buf + buf->data_start);
	memset(spec, 0, sizeof(*spec));
	spec->sector_start = 0;
	spec->length = sectors;
	strncpy(spec->target_type, "zero", sizeof(spec->target_type) - 1);
	spec->next = 0;
	((char *)(spec + 1))[0] = '\0';
	r = dm_ioctl_raw(DM_TABLE_LOAD);
	if (!r) {
		/* DM_DEV_SUSPEND without DM_SUSPEND_FLAG is a resume. */
		init_header(name, 0);
		buf->event_nr = NO_UDEV_EVENT_NR;
		r = dm_ioctl_raw(DM_DEV_SUSPEND);
		if (r)
			fprintf(stderr, "dm_ioctl_floor: DM_DEV_SUSPEND %s: %s\n",
				name, strerror(-r));
	} else {
		fprintf(stderr, "dm_ioctl_floor: DM_TABLE_LOAD %s: %s\n",
			name, strerror(-r));
	}

	/* Always try to remove what we created. */
	init_header(name, 0);
	buf->event_nr = NO_UDEV_EVENT_NR;
	dm_ioctl_or_die(DM_DEV_REMOVE, name);
	if (r)
		exit(1);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned long parse_count(const char *s, const char *what)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-')
		die("invalid %s: %s", what, s);
	return (unsigned long)v;
}

static void check_name(const char *name)
{
	if (strlen(name) >= DM_NAME_LEN)
		die("device name too long: %s", name);
}

static void usage(void)
{
	fputs("usage: dm_ioctl_floor version N | list N | info NAME N |\n"
	      "       table NAME N | status NAME N |\n"
	      "       lifecycle NAME SECTORS N | message NAME MSG N\n",
	      stderr);
	exit(2);
}

enum op { OP_VERSION, OP_LIST, OP_INFO, OP_TABLE, OP_STATUS, OP_LIFECYCLE,
	  OP_MESSAGE };

int main(int argc, char **argv)
{
	const char *name = NULL, *msg = NULL;
	uint64_t sectors = 0;
	unsigned long n, i;
	double *times;
	enum op op;

	if (argc < 3)
		usage();

	if (!strcmp(argv[1], "version") && argc == 3) {
		op = OP_VERSION;
	} else if (!strcmp(argv[1], "list") && argc == 3) {
		op = OP_LIST;
	} else if (!strcmp(argv[1], "info") && argc == 4) {
		op = OP_INFO;
	} else if (!strcmp(argv[1], "table") && argc == 4) {
		op = OP_TABLE;
	} else if (!strcmp(argv[1], "status") && argc == 4) {
		op = OP_STATUS;
	} else if (!strcmp(argv[1], "lifecycle") && argc == 5) {
		op = OP_LIFECYCLE;
		sectors = parse_count(argv[3], "SECTORS");
		if (!sectors)
			die("SECTORS must be positive");
	} else if (!strcmp(argv[1], "message") && argc == 5) {
		op = OP_MESSAGE;
		msg = argv[3];
	} else {
		usage();
	}
	if (argc >= 4) {
		name = argv[2];
		check_name(name);
	}
	n = parse_count(argv[argc - 1], "N");

	times = calloc(n ? n : 1, sizeof(*times));
	if (!times)
		die("out of memory");
	grow_buffer(INITIAL_BUFFER_SIZE);

	control_fd = open(CONTROL_PATH, O_RDWR | O_CLOEXEC);
	if (control_fd < 0)
		die("open %s: %s", CONTROL_PATH, strerror(errno));

	/* Size the buffer for the device list before timing anything. */
	if (op == OP_LIST)
		query(DM_LIST_DEVICES, NULL, 0);

	for (i = 0; i < n; i++) {
		double t0 = now();

		switch (op) {
		case OP_VERSION:
			query(DM_VERSION, NULL, 0);
			break;
		case OP_LIST:
			query(DM_LIST_DEVICES, NULL, 0);
			break;
		case OP_INFO:
			query(DM_DEV_STATUS, name, 0);
			break;
		case OP_TABLE:
			query(DM_TABLE_STATUS, name, DM_STATUS_TABLE_FLAG);
			break;
		case OP_STATUS:
			query(DM_TABLE_STATUS, name, 0);
			break;
		case OP_LIFECYCLE:
			lifecycle_once(name, sectors);
			break;
		case OP_MESSAGE:
			send_message(name, msg);
			break;
		}
		times[i] = now() - t0;
	}

	putchar('[');
	for (i = 0; i < n; i++)
		printf("%s%.9f", i ? ", " : "", times[i]);
	puts("]");

	close(control_fd);
	free(times);
	free(buf);
	return 0;
}
