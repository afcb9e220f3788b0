/*
 * faultshim: an LD_PRELOAD library for the fault matrix (issue 14). It makes
 * two machine faults happen inside fcx's own running processes, without root:
 *
 *   1. the wall clock (CLOCK_REALTIME) stepping, as NTP or an operator steps
 *      it: an offset is added to every wall-clock read. Monotonic clocks are
 *      left alone, as a real step leaves them.
 *   2. a state directory turning read-only under a process that has its files
 *      open (a disk remounted read-only after errors): while a flag is set,
 *      writes under one directory fail with EROFS.
 *
 * Both are driven by one small control file the test writes in place
 * (pwrite; never replaced, the mapping follows the inode):
 *
 *   FCX_FAULTSHIM_CTL=<file>    struct ctl below, native endian, 16 bytes
 *   FCX_FAULTSHIM_RODIR=<dir>   the directory the read-only flag applies to
 *
 * The file is mapped once, at load (a constructor, so no lazy set-up races
 * and nothing is allocated inside a clock read), and each call reads it with
 * one relaxed atomic load: no syscall per clock read, and a running process
 * sees a change at once. Without FCX_FAULTSHIM_CTL every function is a plain
 * pass-through. Only calls made through the dynamic symbol table are seen:
 * Rust's std and the bundled SQLite call these libc symbols directly, which is
 * what fcx uses; glibc's own internal calls (stdio's write) are not, and fcx
 * does not use stdio for state. Linux/glibc only; built by the bench with
 * `cc -shared -fPIC`.
 */
#define _GNU_SOURCE
/* Fortified headers turn open() into an inline wrapper we could not define. */
#undef _FORTIFY_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

struct ctl {
	int64_t realtime_offset_ns; /* added to CLOCK_REALTIME reads */
	int32_t read_only;          /* non-zero: writes under RODIR fail */
	int32_t reserved;
};

static struct ctl *ctl;
static char ro_dir[PATH_MAX], ro_real[PATH_MAX];
static size_t ro_len, ro_real_len;
static int (*real_clock_gettime)(clockid_t, struct timespec *);

__attribute__((constructor)) static void faultshim_init(void)
{
	/* Resolved before anything else so a clock read never needs dlsym. */
	real_clock_gettime = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
	const char *path = getenv("FCX_FAULTSHIM_CTL");
	const char *dir = getenv("FCX_FAULTSHIM_RODIR");
	if (dir && strlen(dir) < PATH_MAX) {
		strcpy(ro_dir, dir);
		ro_len = strlen(ro_dir);
		/* Paths may reach us in either spelling (a symlinked /tmp). */
		if (realpath(dir, ro_real))
			ro_real_len = strlen(ro_real);
	}
	if (!path)
		return;
	/* Raw syscall: open/openat are interposed below and read `ctl`. */
	int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	void *m = mmap(NULL, sizeof(struct ctl), PROT_READ, MAP_SHARED, fd, 0);
	syscall(SYS_close, fd);
	if (m != MAP_FAILED)
		ctl = (struct ctl *)m;
}

static int64_t offset_ns(void)
{
	return ctl ? __atomic_load_n(&ctl->realtime_offset_ns, __ATOMIC_RELAXED) : 0;
}

static void shift(struct timespec *ts)
{
	int64_t off = offset_ns();
	if (!off)
		return;
	int64_t ns = (int64_t)ts->tv_nsec + off % 1000000000LL;
	ts->tv_sec += off / 1000000000LL + ns / 1000000000LL;
	ns %= 1000000000LL;
	if (ns < 0) {
		ns += 1000000000LL;
		ts->tv_sec -= 1;
	}
	ts->tv_nsec = ns;
}

/* --- The wall clock ------------------------------------------------------ */

/* Rust's SystemTime::now (std calls libc's clock_gettime(CLOCK_REALTIME)),
 * tracing's timestamps, tokio/std Instants (MONOTONIC: passed through). */
int clock_gettime(clockid_t id, struct timespec *ts)
{
	int rc = real_clock_gettime ? real_clock_gettime(id, ts)
				    : (int)syscall(SYS_clock_gettime, id, ts);
	if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
		shift(ts);
	return rc;
}

/* glibc's gettimeofday and time do not go through the exported
 * clock_gettime, so each is interposed on its own: SQLite's current time
 * (unixCurrentTimeInt64 uses gettimeofday), and C code calling time(). */
int gettimeofday(struct timeval *tv, void *tz)
{
	struct timespec ts;
	(void)tz;
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return -1;
	tv->tv_sec = ts.tv_sec;
	tv->tv_usec = ts.tv_nsec / 1000;
	return 0;
}

time_t time(time_t *t)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return (time_t)-1;
	if (t)
		*t = ts.tv_sec;
	return ts.tv_sec;
}

/* --- A read-only state directory ----------------------------------------- */

static int read_only(void)
{
	return ctl && ro_len && __atomic_load_n(&ctl->read_only, __ATOMIC_RELAXED);
}

static int prefixed(const char *p, const char *dir, size_t len)
{
	return len && strncmp(p, dir, len) == 0 && (p[len] == '/' || p[len] == '\0');
}

static int under(const char *abs)
{
	return prefixed(abs, ro_dir, ro_len) || prefixed(abs, ro_real, ro_real_len);
}

/* Where an fd points: /proc/self/fd is the kernel's own answer, so an fd
 * opened before the flag was set (SQLite's database and WAL) is caught. Only
 * looked up while the flag is set: no cost otherwise. */
static int fd_blocked(int fd)
{
	char link[64], target[PATH_MAX];
	if (!read_only())
		return 0;
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, target, sizeof target - 1);
	if (n <= 0)
		return 0;
	target[n] = '\0';
	return under(target);
}

static int path_blocked(int dirfd, const char *path)
{
	char base[PATH_MAX], full[PATH_MAX * 2];
	if (!read_only() || !path)
		return 0;
	if (path[0] == '/')
		return under(path);
	char link[64];
	if (dirfd == AT_FDCWD)
		snprintf(link, sizeof link, "/proc/self/cwd");
	else
		snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
	ssize_t n = readlink(link, base, sizeof base - 1);
	if (n <= 0)
		return 0;
	base[n] = '\0';
	snprintf(full, sizeof full, "%s/%s", base, path);
	return under(full);
}

static int writes(int flags)
{
	return (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND)) != 0;
}

/* The next definition of `name` (libc's), looked up once per symbol: a
 * dlsym per write would cost more than the write. Racing threads store the
 * same pointer, so a relaxed cache is enough. */
#define REAL(name)                                                        \
	({                                                                \
		static __typeof__(&name) real_;                           \
		__typeof__(&name) f_ = __atomic_load_n(&real_, __ATOMIC_RELAXED); \
		if (!f_) {                                                \
			f_ = (__typeof__(&name))dlsym(RTLD_NEXT, #name);  \
			__atomic_store_n(&real_, f_, __ATOMIC_RELAXED);   \
		}                                                         \
		f_;                                                       \
	})
#define EROFS_IF(cond, fail)   \
	do {                   \
		if (cond) {    \
			errno = EROFS; \
			return fail;   \
		}              \
	} while (0)

/* The mode argument exists only with O_CREAT / O_TMPFILE. */
#define MODE_ARG(flags, mode)                                          \
	do {                                                           \
		if ((flags) & (O_CREAT | O_TMPFILE)) {                   \
			va_list ap;                                    \
			va_start(ap, flags);                           \
			mode = va_arg(ap, mode_t);                     \
			va_end(ap);                                    \
		}                                                      \
	} while (0)

/* Opening for writing: Rust's std (open64), SQLite (open/open64). */
int open(const char *path, int flags, ...)
{
	mode_t mode = 0;
	MODE_ARG(flags, mode);
	EROFS_IF(writes(flags) && path_blocked(AT_FDCWD, path), -1);
	return REAL(open)(path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
	mode_t mode = 0;
	MODE_ARG(flags, mode);
	EROFS_IF(writes(flags) && path_blocked(AT_FDCWD, path), -1);
	return REAL(open64)(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;
	MODE_ARG(flags, mode);
	EROFS_IF(writes(flags) && path_blocked(dirfd, path), -1);
	return REAL(openat)(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;
	MODE_ARG(flags, mode);
	EROFS_IF(writes(flags) && path_blocked(dirfd, path), -1);
	return REAL(openat64)(dirfd, path, flags, mode);
}

/* Data: Rust's write/write_vectored, SQLite's WAL and database pages
 * (pwrite64), std's write_at / write_vectored_at. */
ssize_t write(int fd, const void *buf, size_t n)
{
	EROFS_IF(fd_blocked(fd), -1);
	return REAL(write)(fd, buf, n);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	EROFS_IF(fd_blocked(fd), -1);
	return REAL(writev)(fd, iov, cnt);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	EROFS_IF(fd_blocked(fd), -1);
	return REAL(pwrite)(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
	EROFS_IF(fd_blocked(fd), -1);
	return REAL(pwrite64)(fd, buf, n, off);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	EROFS_IF(fd_blocked(fd), -1);
	return REAL(pwritev)(fd, iov, cnt, off);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off64_t off)
{
	EROFS_IF(fd_blocked(fd), -1);
	return REAL(pwritev64)(fd, iov, cnt, off);
}

/* Durability and size: SQLite's commits (fdatasync/fsync), WAL resets
 * (ftruncate), std's sync_all / set_len. */
int fsync(int fd)
{
	EROFS_IF(fd_blocked(fd), -1);
	return REAL(fsync)(fd);
}

int fdatasync(int fd)
{
	EROFS_IF(fd_blocked(fd), -1);
	return REAL(fdatasync)(fd);
}

int ftruncate(int fd, off_t len)
{
	EROFS_IF(fd_blocked(fd), -1);
	return REAL(ftruncate)(fd, len);
}

int ftruncate64(int fd, off64_t len)
{
	EROFS_IF(fd_blocked(fd), -1);
	return REAL(ftruncate64)(fd, len);
}

/* Names: atomic replacement (write a temporary, rename), removals, new
 * directories (std::fs::rename / remove_file / create_dir, SQLite's
 * journal deletes). */
int rename(const char *from, const char *to)
{
	EROFS_IF(path_blocked(AT_FDCWD, from) || path_blocked(AT_FDCWD, to), -1);
	return REAL(rename)(from, to);
}

int renameat(int fd1, const char *from, int fd2, const char *to)
{
	EROFS_IF(path_blocked(fd1, from) || path_blocked(fd2, to), -1);
	return REAL(renameat)(fd1, from, fd2, to);
}

int renameat2(int fd1, const char *from, int fd2, const char *to, unsigned int flags)
{
	EROFS_IF(path_blocked(fd1, from) || path_blocked(fd2, to), -1);
	return REAL(renameat2)(fd1, from, fd2, to, flags);
}

int unlink(const char *path)
{
	EROFS_IF(path_blocked(AT_FDCWD, path), -1);
	return REAL(unlink)(path);
}

int unlinkat(int dirfd, const char *path, int flags)
{
	EROFS_IF(path_blocked(dirfd, path), -1);
	return REAL(unlinkat)(dirfd, path, flags);
}

int mkdir(const char *path, mode_t mode)
{
	EROFS_IF(path_blocked(AT_FDCWD, path), -1);
	return REAL(mkdir)(path, mode);
}
