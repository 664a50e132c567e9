// SPDX-License-Identifier: GPL-2.0
/*
 * dm_ioctl_floor: the cost of raw device-mapper ioctls from C, as a floor
 * for pydevmapper's benchmarks.  One control fd and one reused buffer; no
 * libdevmapper, no udev synchronisation.
 *
 *   dm_ioctl_floor [-s BYTES] version N
 *   dm_ioctl_floor [-s BYTES] list N
 *   dm_ioctl_floor [-s BYTES] info NAME N
 *   dm_ioctl_floor [-s BYTES] table NAME N
 *   dm_ioctl_floor [-s BYTES] status NAME N
 *   dm_ioctl_floor [-s BYTES] lifecycle NAME TABLE_LINE N
 *   dm_ioctl_floor [-s BYTES] message NAME MSG N
 *
 * Prints a JSON list of N per-iteration wall times in seconds
 * (CLOCK_MONOTONIC) on stdout; errors go to stderr with exit status 1.
 * lifecycle creates NAME, loads the one-target TABLE_LINE ("0 2048 linear
 * 7:0 0"), resumes it, makes /dev/mapper/NAME, then removes node and device,
 * N times: what pydevmapper and libdevmapper do without udev sync, with the
 * same udev flags and the same retry while a udev worker holds the device.
 * message sends MSG to the target at sector 0.
 *
 * -s BYTES sets the buffer (header included; default 8 KiB) that every
 * request declares as data_size.  The kernel copies that much in for each
 * command that takes parameters, so the benchmark passes the size
 * pydevmapper settled on for the same reply: the same ioctls.  A reply
 * that does not fit still doubles the buffer.
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/dm-ioctl.h>

#define CONTROL_PATH "/dev/mapper/control"
/* As pydevmapper's first buffer: up to 8 KiB the kernel's copy is a slab allocation. */
#define INITIAL_BUFFER_SIZE (8 * 1024)
/* As pydevmapper's largest (_MAX_BUFFER_SIZE). */
#define MAX_BUFFER_SIZE (256UL * 1024 * 1024)

/*
 * udev flags from libdevmapper.h (userspace convention, not kernel ABI):
 * they ride in the upper 16 bits of event_nr, the lower 16 bits being the
 * udev cookie.  Cookie 0 means nobody waits for udev; the flags are the
 * ones pydevmapper and libdevmapper send when they make the node
 * themselves: udev's DM and subsystem rules keep off /dev/mapper.
 */
#define DM_UDEV_FLAGS_SHIFT 16
#define DM_UDEV_DISABLE_DM_RULES_FLAG 0x0001
#define DM_UDEV_DISABLE_SUBSYSTEM_RULES_FLAG 0x0002
#define DM_UDEV_PRIMARY_SOURCE_FLAG 0x0040
#define NO_UDEV_EVENT_NR                                                    \
	((uint32_t)(DM_UDEV_PRIMARY_SOURCE_FLAG |                           \
		    DM_UDEV_DISABLE_DM_RULES_FLAG |                         \
		    DM_UDEV_DISABLE_SUBSYSTEM_RULES_FLAG)                   \
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

struct table_line {
	uint64_t start, length;
	char type[DM_MAX_TYPE_NAME];
	const char *params;
};

static void parse_table_line(const char *line, struct table_line *t)
{
	int params_at = 0;

	/* %15s: DM_MAX_TYPE_NAME - 1, checked by the static assert below. */
	_Static_assert(DM_MAX_TYPE_NAME == 16, "update the %15s width");
	if (sscanf(line, "%" SCNu64 " %" SCNu64 " %15s %n", &t->start, &t->length,
		   t->type, &params_at) < 3 || !params_at || !t->length)
		die("bad table line: %s", line);
	t->params = line + params_at;
}

static void node_path(char *path, size_t size, const char *name)
{
	if ((size_t)snprintf(path, size, "/dev/mapper/%s", name) >= size)
		die("device name too long: %s", name);
}

/* DM_DEV_REMOVE, retried with backoff while a udev worker holds the device. */
static void remove_device(const char *name)
{
	struct timespec pause = { 0, 5 * 1000 * 1000 };
	int tries, r = 0;

	for (tries = 0; tries < 30; tries++) {
		init_header(name, 0);
		buf->event_nr = NO_UDEV_EVENT_NR;
		r = dm_ioctl_raw(DM_DEV_REMOVE);
		if (r != -EBUSY)
			break;
		nanosleep(&pause, NULL);
		if (pause.tv_nsec < 200 * 1000 * 1000)
			pause.tv_nsec *= 2;
	}
	if (r)
		die("DM_DEV_REMOVE %s: %s", name, strerror(-r));
}

static void lifecycle_once(const char *name, const struct table_line *t)
{
	struct dm_target_spec *spec;
	char path[sizeof("/dev/mapper/") + DM_NAME_LEN];
	size_t plen = strlen(t->params) + 1;
	int r;

	node_path(path, sizeof(path), name);
	if (sizeof(*buf) + sizeof(*spec) + plen > buf_size)
		grow_buffer(sizeof(*buf) + sizeof(*spec) + plen);

	init_header(name, 0);
	buf->event_nr = NO_UDEV_EVENT_NR;
	dm_ioctl_or_die(DM_DEV_CREATE, name);

	init_header(name, DM_SECURE_DATA_FLAG);
	buf->target_count = 1;
	spec = (struct dm_target_spec *)((char *)buf + buf->data_start);
	memset(spec, 0, sizeof(*spec));
	spec->sector_start = t->start;
	spec->length = t->length;
	memcpy(spec->target_type, t->type, sizeof(spec->target_type));
	spec->next = 0;
	memcpy(spec + 1, t->params, plen);
	r = dm_ioctl_raw(DM_TABLE_LOAD);
	if (!r) {
		/* DM_DEV_SUSPEND without DM_SUSPEND_FLAG is a resume. */
		init_header(name, 0);
		buf->event_nr = NO_UDEV_EVENT_NR;
		r = dm_ioctl_raw(DM_DEV_SUSPEND);
		if (r)
			fprintf(stderr, "dm_ioctl_floor: DM_DEV_SUSPEND %s: %s\n",
				name, strerror(-r));
		/* The kernel's huge_encode_dev() is glibc's dev_t layout. */
		else if (mknod(path, S_IFBLK | 0600, (dev_t)buf->dev) < 0)
			die("mknod %s: %s", path, strerror(errno));
	} else {
		fprintf(stderr, "dm_ioctl_floor: DM_TABLE_LOAD %s: %s\n",
			name, strerror(-r));
	}

	/* Always try to remove what we created. */
	remove_device(name);
	if (unlink(path) < 0 && errno != ENOENT)
		die("unlink %s: %s", path, strerror(errno));
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
	fputs("usage: dm_ioctl_floor [-s BYTES] version N | list N | info NAME N |\n"
	      "       table NAME N | status NAME N |\n"
	      "       lifecycle NAME TABLE_LINE N | message NAME MSG N\n",
	      stderr);
	exit(2);
}

enum op { OP_VERSION, OP_LIST, OP_INFO, OP_TABLE, OP_STATUS, OP_LIFECYCLE,
	  OP_MESSAGE };

int main(int argc, char **argv)
{
	const char *name = NULL, *msg = NULL;
	struct table_line line = { 0 };
	unsigned long n, i, size = INITIAL_BUFFER_SIZE;
	double *times;
	enum op op;

	if (argc >= 3 && !strcmp(argv[1], "-s")) {
		size = parse_count(argv[2], "buffer size");
		if (size < sizeof(*buf) || size > MAX_BUFFER_SIZE)
			die("buffer size %lu is not between %zu and %lu", size,
			    sizeof(*buf), MAX_BUFFER_SIZE);
		argc -= 2;
		argv += 2;
	}
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
		parse_table_line(argv[3], &line);
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
	grow_buffer(size);

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
			lifecycle_once(name, &line);
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
