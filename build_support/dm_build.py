# SPDX-License-Identifier: LGPL-2.1-or-later
"""cffi API-mode build of pydevmapper's raw kernel binding.

Build-time only: setup.py names this file in ``cffi_modules`` and it is not
shipped.  Every struct layout, flag and ioctl number below is declared with
``...`` so the C compiler fills the real value in from the kernel's UAPI
headers; nothing is typed by hand.  Those headers (``dm-ioctl.h``,
``loop.h``, ``hdreg.h``) are vendored in ``build_support/include/linux``
from the newest kernel we test, so every build has every command and flag
whatever the build host's headers are, and the running kernel's interface
version alone decides what may be sent (see ``channel.Command``).
``fiemap.h`` and ``fs.h`` are the build host's (linux-libc-dev): FIEMAP
has not changed since Linux 2.6.28.
"""

import os

from cffi import FFI

INCLUDE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "include")

ffibuilder = FFI()

# Structs: only the members we touch are named; "...;" lets the compiler lay
# them out.  The flexible-array tails (name[], dev[], ...) are addressed by
# offsetof() from Python, so they are declared as fixed-size placeholders here.
ffibuilder.cdef(
    """
    struct dm_ioctl {
        uint32_t version[3];
        uint32_t data_size;
        uint32_t data_start;
        uint32_t target_count;
        int32_t open_count;
        uint32_t flags;
        uint32_t event_nr;
        uint64_t dev;
        char name[...];
        char uuid[...];
        ...;
    };
    struct dm_target_spec {
        uint64_t sector_start;
        uint64_t length;
        int32_t status;
        uint32_t next;
        char target_type[...];
        ...;
    };
    struct dm_target_deps { uint32_t count; ...; };
    struct dm_name_list { uint64_t dev; uint32_t next; ...; };
    struct dm_target_versions { uint32_t next; uint32_t version[3]; ...; };
    struct dm_target_msg { uint64_t sector; ...; };

    /* offsets of the flexible-array members, from the compiler */
    static const size_t PYDM_OFFSETOF_DEPS_DEV;
    static const size_t PYDM_OFFSETOF_NAME_LIST_NAME;
    static const size_t PYDM_OFFSETOF_VERSIONS_NAME;
    static const size_t PYDM_OFFSETOF_MSG_MESSAGE;
    static const size_t PYDM_OFFSETOF_IOCTL_DATA;

    #define DM_IOCTL ...
    #define DM_VERSION_MAJOR ...
    #define DM_VERSION_MINOR ...
    #define DM_VERSION_PATCHLEVEL ...
    #define DM_NAME_LEN ...
    #define DM_UUID_LEN ...
    #define DM_MAX_TYPE_NAME ...

    #define DM_VERSION ...
    #define DM_REMOVE_ALL ...
    #define DM_LIST_DEVICES ...
    #define DM_DEV_CREATE ...
    #define DM_DEV_REMOVE ...
    #define DM_DEV_RENAME ...
    #define DM_DEV_SUSPEND ...
    #define DM_DEV_STATUS ...
    #define DM_DEV_WAIT ...
    #define DM_TABLE_LOAD ...
    #define DM_TABLE_CLEAR ...
    #define DM_TABLE_DEPS ...
    #define DM_TABLE_STATUS ...
    #define DM_LIST_VERSIONS ...
    #define DM_TARGET_MSG ...
    #define DM_DEV_SET_GEOMETRY ...
    #define DM_DEV_ARM_POLL ...
    #define DM_GET_TARGET_VERSION ...

    #define DM_READONLY_FLAG ...
    #define DM_SUSPEND_FLAG ...
    #define DM_PERSISTENT_DEV_FLAG ...
    #define DM_STATUS_TABLE_FLAG ...
    #define DM_ACTIVE_PRESENT_FLAG ...
    #define DM_INACTIVE_PRESENT_FLAG ...
    #define DM_BUFFER_FULL_FLAG ...
    #define DM_SKIP_BDGET_FLAG ...
    #define DM_SKIP_LOCKFS_FLAG ...
    #define DM_NOFLUSH_FLAG ...
    #define DM_QUERY_INACTIVE_TABLE_FLAG ...
    #define DM_UEVENT_GENERATED_FLAG ...
    #define DM_UUID_FLAG ...
    #define DM_SECURE_DATA_FLAG ...
    #define DM_DATA_OUT_FLAG ...
    #define DM_DEFERRED_REMOVE ...
    #define DM_INTERNAL_SUSPEND_FLAG ...
    #define DM_IMA_MEASUREMENT_FLAG ...
    #define DM_NAME_LIST_FLAG_HAS_UUID ...
    #define DM_NAME_LIST_FLAG_DOESNT_HAVE_UUID ...

    /* Bumped when this file changes what the Python side relies on; the
       package refuses to import a stale compiled binding. */
    static const int PYDM_BINDING_ABI;

    int ioctl(int fd, unsigned long request, ...);
    /* The device-mapper ioctl, not variadic: cffi calls a variadic
       function through libffi, preparing the call at every call. */
    int pydm_dm_ioctl(int fd, unsigned long request, void *buffer);
    /* Zeroes buffer[start:end]. */
    void pydm_zero(char *buffer, size_t start, size_t end);

    /* A DM_LIST_DEVICES reply split into columns (see the C source below). */
    #define PYDM_LISTED_EVENT_NR ...
    #define PYDM_LISTED_UUID ...
    long pydm_name_list_columns(const char *data, size_t size, int with_tail,
                                size_t capacity, uint32_t *majors, uint32_t *minors,
                                uint32_t *event_nrs, uint8_t *present,
                                char *names, char *uuids, size_t *totals);

    /* loop devices, for the test kit and the walkthrough */
    struct loop_info64 {
        uint64_t lo_offset;
        uint64_t lo_sizelimit;
        uint32_t lo_flags;
        uint8_t lo_file_name[...];
        ...;
    };
    struct loop_config {
        uint32_t fd;
        uint32_t block_size;
        struct loop_info64 info;
        ...;
    };
    #define LOOP_CTL_GET_FREE ...
    #define LOOP_SET_FD ...
    #define LOOP_CLR_FD ...
    #define LOOP_SET_STATUS64 ...
    #define LOOP_GET_STATUS64 ...
    #define LOOP_CONFIGURE ...
    #define LO_FLAGS_AUTOCLEAR ...
    #define LO_FLAGS_DIRECT_IO ...
    #define LO_FLAGS_READ_ONLY ...

    /* a file's extents on its block device (FS_IOC_FIEMAP), for dm-stats
       regions that follow a file (dmstats create --filemap) */
    struct fiemap_extent {
        uint64_t fe_logical;
        uint64_t fe_physical;
        uint64_t fe_length;
        uint32_t fe_flags;
        ...;
    };
    struct fiemap {
        uint64_t fm_start;
        uint64_t fm_length;
        uint32_t fm_flags;
        uint32_t fm_mapped_extents;
        uint32_t fm_extent_count;
        ...;
    };
    #define FS_IOC_FIEMAP ...
    #define FIEMAP_FLAG_SYNC ...
    #define FIEMAP_EXTENT_LAST ...
    #define FIEMAP_EXTENT_UNKNOWN ...
    #define FIEMAP_EXTENT_DELALLOC ...
    static const size_t PYDM_OFFSETOF_FIEMAP_EXTENTS;
    /* 1 if the open file fd is on btrfs (libdevmapper refuses to map a
       file there: its FIEMAP addresses are not the block device's), 0 if
       not, -errno if fstatfs fails.  In C: f_type's type differs between
       architectures, and the magic number compares right only unsigned. */
    int pydm_on_btrfs(int fd);

    /* SysV semaphores: libdevmapper's udev cookies are semaphores that the
       stock 95-dm-notify.rules release with `dmsetup udevcomplete`. */
    struct sembuf { unsigned short sem_num; short sem_op; short sem_flg; ...; };
    int semget(int key, int nsems, int semflg);
    int semctl(int semid, int semnum, int cmd, ...);
    int semop(int semid, struct sembuf *sops, size_t nsops);
    int semtimedop(int semid, struct sembuf *sops, size_t nsops, const struct timespec *timeout);
    struct timespec { long tv_sec; long tv_nsec; ...; };
    #define IPC_CREAT ...
    #define IPC_EXCL ...
    #define IPC_NOWAIT ...
    #define IPC_RMID ...
    #define IPC_STAT ...
    #define SETVAL ...
    #define GETVAL ...
    #define SEM_INFO ...
    #define SEM_STAT ...

    /* A udev cookie's semaphore made and removed in one call each, and
       one semop (see udev.Cookie and the C source below): no Python runs
       while a semaphore exists that its owner does not know of yet, so
       no signal mask is needed around it. */
    int pydm_cookie_create(int *ids);
    int pydm_cookie_remove(int *ids);
    int pydm_semop(int semid, int op, int flags, long long timeout_ns);

    /* block device geometry, as DM_DEV_SET_GEOMETRY sets it */
    struct hd_geometry { unsigned char heads; unsigned char sectors;
                         unsigned short cylinders; unsigned long start; ...; };
    #define HDIO_GETGEO ...

    /* kernel modules: finit_module(2) and delete_module(2) have no glibc
       wrappers, so they go through syscall(2) with the compiler's numbers. */
    long syscall(long number, ...);
    #define SYS_finit_module ...
    #define SYS_delete_module ...
    """
)

ffibuilder.set_source(
    "pydevmapper._dm_cffi",
    r"""
    #include <stddef.h>
    #include <stdint.h>
    #include <string.h>
    #include <sys/ioctl.h>
    #include <sys/sysmacros.h>
    #include <sys/syscall.h>
    #include <unistd.h>
    #include <linux/dm-ioctl.h>
    #include <linux/loop.h>
    #include <linux/hdreg.h>
    #include <linux/fs.h>
    #include <linux/fiemap.h>
    #include <linux/magic.h>
    #include <sys/vfs.h>
    #include <sys/ipc.h>
    #include <sys/sem.h>
    #include <errno.h>
    #include <sys/random.h>
    #include <time.h>

    static const int PYDM_BINDING_ABI = 9;
    static const size_t PYDM_OFFSETOF_DEPS_DEV = offsetof(struct dm_target_deps, dev);
    static const size_t PYDM_OFFSETOF_NAME_LIST_NAME = offsetof(struct dm_name_list, name);
    static const size_t PYDM_OFFSETOF_VERSIONS_NAME = offsetof(struct dm_target_versions, name);
    static const size_t PYDM_OFFSETOF_MSG_MESSAGE = offsetof(struct dm_target_msg, message);
    static const size_t PYDM_OFFSETOF_IOCTL_DATA = offsetof(struct dm_ioctl, data);
    static const size_t PYDM_OFFSETOF_FIEMAP_EXTENTS = offsetof(struct fiemap, fm_extents);

    static int pydm_dm_ioctl(int fd, unsigned long request, void *buffer)
    {
        return ioctl(fd, request, buffer);
    }

    /* A function, not memset itself: Python would need cdata pointer
       arithmetic (an object per call) to name the start. */
    static void pydm_zero(char *buffer, size_t start, size_t end)
    {
        if (end > start)
            memset(buffer + start, 0, end - start);
    }

    /* Splits a DM_LIST_DEVICES data area into columns: each device's
       major, minor and event number, and its name and uuid appended
       NUL-terminated to the `names` and `uuids` texts.  Python then builds
       the list with a few C-level passes (one decode and split per text,
       one map over the columns) instead of a loop of bytecode per record,
       which cost about 15 us a device under emulation; hosts with
       thousands of devices list them all the time.

       `present[i]` says which optional parts device i had: the event
       number (DM 4.37+) and uuid information (4.45+, when asked; a device
       without a uuid gets an empty one, as the kernel's DOESNT_HAVE_UUID
       flag says).  The kernel places them after the name's NUL, 8-aligned,
       and only if they fit before the next record; `with_tail` is false
       for kernels that never write them.  `capacity` bounds every output
       array and `names`/`uuids` must hold `size` bytes each.  `totals`
       receives the two texts' lengths and how many devices had an event
       number and uuid information, so a caller checks two counts instead
       of every `present`.

       Returns the number of devices (0 when the first record's dev is 0:
       the kernel's way of saying none), or -1 if a record, a string or
       the count runs past what the reply or the arrays hold. */
    #define PYDM_LISTED_EVENT_NR 1
    #define PYDM_LISTED_UUID 2

    static long pydm_name_list_columns(const char *data, size_t size, int with_tail,
                                       size_t capacity, uint32_t *majors, uint32_t *minors,
                                       uint32_t *event_nrs, uint8_t *present,
                                       char *names, char *uuids, size_t *totals)
    {
        const size_t name_at = offsetof(struct dm_name_list, name);
        size_t offset = 0, count = 0, names_len = 0, uuids_len = 0;
        size_t with_event_nr = 0, with_uuid = 0;

        totals[0] = totals[1] = totals[2] = totals[3] = 0;
        if (size < name_at)
            return 0;  /* no devices: the kernel counts no bytes for dev=0 */
        for (;;) {
            struct dm_name_list head;
            const char *name, *name_nul, *uuid = "";
            size_t uuid_len = 0, name_len, tail;

            if (offset > size - name_at)
                return -1;
            memcpy(&head, data + offset, name_at);  /* records need not be aligned in `data` */
            if (count == 0 && head.dev == 0)
                return 0;
            if (count == capacity)
                return -1;
            name = data + offset + name_at;
            name_nul = memchr(name, 0, size - offset - name_at);
            if (!name_nul)
                return -1;
            name_len = (size_t)(name_nul - name) + 1;
            if (name_len > size - names_len)
                return -1;  /* only overlapping records could get here */
            memcpy(names + names_len, name, name_len);
            names_len += name_len;
            majors[count] = major(head.dev);
            minors[count] = minor(head.dev);
            event_nrs[count] = 0;
            present[count] = 0;
            tail = ((size_t)(name_nul - data) + 8) & ~(size_t)7;
            if (with_tail && tail + 8 <= size
                    && (head.next == 0 || tail + 8 <= offset + head.next)) {
                uint32_t pair[2];  /* event_nr, flags */

                memcpy(pair, data + tail, sizeof(pair));
                event_nrs[count] = pair[0];
                present[count] = PYDM_LISTED_EVENT_NR;
                with_event_nr++;
                if (pair[1] & DM_NAME_LIST_FLAG_HAS_UUID) {
                    const char *uuid_nul;

                    uuid = data + tail + 8;
                    uuid_nul = memchr(uuid, 0, size - tail - 8);
                    if (!uuid_nul)
                        return -1;
                    uuid_len = (size_t)(uuid_nul - uuid);
                }
                if (pair[1]) {
                    present[count] |= PYDM_LISTED_UUID;
                    with_uuid++;
                }
            }
            if (uuid_len + 1 > size - uuids_len)
                return -1;
            memcpy(uuids + uuids_len, uuid, uuid_len);
            uuids[uuids_len + uuid_len] = 0;
            uuids_len += uuid_len + 1;
            count++;
            if (head.next == 0)
                break;
            if (head.next > size - offset)
                return -1;
            offset += head.next;
        }
        totals[0] = names_len;
        totals[1] = uuids_len;
        totals[2] = with_event_nr;
        totals[3] = with_uuid;
        return (long)count;
    }

    /* udev cookies (libdevmapper's layout: key 0x0D4D << 16 | base).
       pydm_cookie_create makes a semaphore under a random non-zero base
       whose key is free and raises it to 1 for the one uevent expected;
       ids[0] and ids[1] get its id and base only once it exists, and
       nothing is left on failure.  pydm_cookie_remove removes the
       semaphore in ids[0], if any, and marks ids empty first, so a second
       call does nothing.  Both return 0 or an errno.  Python reads ids
       after the call: a KeyboardInterrupt raised just after still finds
       the id there for the clean-up. */
    #define PYDM_COOKIE_MAGIC 0x0D4D

    static int pydm_cookie_create(int *ids)
    {
        int semid, err;
        uint16_t base;
        struct sembuf up = { 0, 1, 0 };

        for (;;) {
            if (getrandom(&base, sizeof(base), 0) != sizeof(base)) {
                if (errno == EINTR)
                    continue;
                return errno;
            }
            if (!base)
                continue;
            semid = semget((key_t)(PYDM_COOKIE_MAGIC << 16 | base), 1,
                           0600 | IPC_CREAT | IPC_EXCL);
            if (semid >= 0)
                break;
            if (errno != EEXIST)  /* EEXIST: another cookie has that base */
                return errno;
        }
        /* A fresh semaphore starts at 0 (no SETVAL: semctl's union
           argument is variadic); raising it never blocks. */
        if (semop(semid, &up, 1) < 0) {
            err = errno;
            semctl(semid, 0, IPC_RMID);
            return err;
        }
        ids[1] = base;
        ids[0] = semid;
        return 0;
    }

    static int pydm_cookie_remove(int *ids)
    {
        int semid = ids[0];

        if (semid < 0)
            return 0;
        ids[0] = -1;
        if (semctl(semid, 0, IPC_RMID) < 0 && errno != EINVAL && errno != EIDRM)
            return errno;
        return 0;
    }

    /* Whether fd's file system is btrfs: 1, 0 or -errno.  Python's
       os.statvfs has no f_type, so fstatfs is called here. */
    static int pydm_on_btrfs(int fd)
    {
        struct statfs fs;

        if (fstatfs(fd, &fs) < 0)
            return -errno;
        return (unsigned long)fs.f_type == (unsigned long)BTRFS_SUPER_MAGIC;
    }

    /* One semop on semaphore 0, bounded by timeout_ns when it is not
       negative.  0 or the errno (EINTR included: Python runs its signal
       handlers, then calls again). */
    static int pydm_semop(int semid, int op, int flags, long long timeout_ns)
    {
        struct sembuf sb = { 0, (short)op, (short)flags };
        struct timespec ts;

        if (timeout_ns < 0)
            return semop(semid, &sb, 1) < 0 ? errno : 0;
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        return semtimedop(semid, &sb, 1, &ts) < 0 ? errno : 0;
    }
    """,
    # Ahead of the system's: the vendored UAPI headers win.
    include_dirs=[INCLUDE],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
