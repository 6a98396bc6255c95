/*
 * hvshim: LD_PRELOAD library that attaches an unmodified Hyper-V guest daemon (hv_kvp_daemon,
 * hv_fcopy_daemon, hv_vss_daemon from Debian's hyperv-daemons) to hvis's guest kernel instead of the
 * /dev/vmbus/hv_* char devices. Written for hvis; the device semantics reproduced are those of Linux
 * drivers/hv/hv_utils_transport.c (one message per read/write, EINVAL when the reader's buffer is too
 * small, EBADF once the kernel side is gone).
 *
 * Stream protocol (src/bridges/uapi/framing.ts): u32 little-endian length + payload, both ways; the first
 * frame from here is HELLO "<device path>\0<pid>".
 *
 * Environment:
 *   HVSHIM_SOCKET       Unix socket path of the bridge (required)
 *   HVSHIM_PREFIX       device prefix to redirect (default "/dev/vmbus/")
 *   HVSHIM_MOUNTS       file read instead of /proc/mounts by setmntent (VSS freeze walks)
 *   HVSHIM_FAKE_FREEZE  "1": FIFREEZE/FITHAW are logged and reported as done, never issued
 *   HVSHIM_QUIET        "1": no trace lines of the shim itself
 * syslog() goes to stderr (the daemons log only through syslog).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <mntent.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#define NFD 4096
static unsigned char dev_fd[NFD];
static char ident[64] = "daemon";

#define NEXT(type, fn, params) static type(*next_##fn) params; if (!next_##fn) next_##fn = dlsym(RTLD_NEXT, #fn)

static void note(const char *fmt, ...)
{
	const char *q = getenv("HVSHIM_QUIET");
	va_list ap;
	if (q && q[0] == '1') return;
	va_start(ap, fmt);
	fprintf(stderr, "[hvshim %d] ", (int)getpid());
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static int ours(int fd) { return fd >= 0 && fd < NFD && dev_fd[fd]; }

/* Moves exactly n bytes; returns n, a short count at EOF, or -1. */
static ssize_t move(int fd, void *p, size_t n, int out)
{
	size_t k = 0;
	while (k < n) {
		ssize_t r = out ? send(fd, (char *)p + k, n - k, MSG_NOSIGNAL) : recv(fd, (char *)p + k, n - k, 0);
		if (r < 0) { if (errno == EINTR) continue; return -1; }
		if (r == 0) break;
		k += (size_t)r;
	}
	return (ssize_t)k;
}

static int put_frame(int fd, const void *p, uint32_t n)
{
	unsigned char hdr[4];
	uint32_t le = htole32(n);
	memcpy(hdr, &le, 4);
	if (move(fd, hdr, 4, 1) != 4) return -1;
	return n && move(fd, (void *)p, n, 1) != (ssize_t)n ? -1 : 0;
}

static int redirected(const char *path)
{
	const char *prefix = getenv("HVSHIM_PREFIX");
	if (!prefix) prefix = "/dev/vmbus/";
	return path && strncmp(path, prefix, strlen(prefix)) == 0;
}

static int attach(const char *path, int flags)
{
	const char *sock = getenv("HVSHIM_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char hello[600];
	int fd, n;
	if (!sock || !*sock || strlen(sock) >= sizeof(sa.sun_path)) { errno = ENOENT; return -1; }
	strcpy(sa.sun_path, sock);
	fd = socket(AF_UNIX, SOCK_STREAM | ((flags & O_CLOEXEC) ? SOCK_CLOEXEC : 0), 0);
	if (fd < 0) return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		note("no guest kernel at %s for %s: %s", sock, path, strerror(e));
		errno = e == ECONNREFUSED ? ENODEV : e;
		return -1;
	}
	n = snprintf(hello, sizeof(hello), "%s%c%d", path, 0, (int)getpid());
	if (fd >= NFD || n < 0 || (size_t)n >= sizeof(hello) || put_frame(fd, hello, (uint32_t)n) < 0) {
		close(fd);
		errno = EIO;
		return -1;
	}
	dev_fd[fd] = 1;
	note("%s -> fd %d", path, fd);
	return fd;
}

static mode_t mode_arg(int flags, va_list ap) { return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0; }

int open(const char *path, int flags, ...)
{
	va_list ap; mode_t m;
	NEXT(int, open, (const char *, int, ...));
	va_start(ap, flags); m = mode_arg(flags, ap); va_end(ap);
	return redirected(path) ? attach(path, flags) : next_open(path, flags, m);
}
int open64(const char *path, int flags, ...)
{
	va_list ap; mode_t m;
	NEXT(int, open64, (const char *, int, ...));
	va_start(ap, flags); m = mode_arg(flags, ap); va_end(ap);
	return redirected(path) ? attach(path, flags) : next_open64(path, flags, m);
}
int openat(int dir, const char *path, int flags, ...)
{
	va_list ap; mode_t m;
	NEXT(int, openat, (int, const char *, int, ...));
	va_start(ap, flags); m = mode_arg(flags, ap); va_end(ap);
	return redirected(path) ? attach(path, flags) : next_openat(dir, path, flags, m);
}
int openat64(int dir, const char *path, int flags, ...)
{
	va_list ap; mode_t m;
	NEXT(int, openat64, (int, const char *, int, ...));
	va_start(ap, flags); m = mode_arg(flags, ap); va_end(ap);
	return redirected(path) ? attach(path, flags) : next_openat64(dir, path, flags, m);
}
int __open_2(const char *path, int flags)
{
	NEXT(int, __open_2, (const char *, int));
	return redirected(path) ? attach(path, flags) : next___open_2(path, flags);
}
int __open64_2(const char *path, int flags)
{
	NEXT(int, __open64_2, (const char *, int));
	return redirected(path) ? attach(path, flags) : next___open64_2(path, flags);
}

/* One frame = one message. Too big for the caller: dropped, EINVAL. Kernel gone: EBADF. */
static ssize_t dev_read(int fd, void *buf, size_t cap)
{
	unsigned char hdr[4];
	uint32_t n;
	ssize_t r = move(fd, hdr, 4, 0);
	if (r == 0) { note("guest kernel closed fd %d", fd); errno = EBADF; return -1; }
	if (r != 4) { errno = EIO; return -1; }
	memcpy(&n, hdr, 4);
	n = le32toh(n);
	if (n > cap) {
		char sink[4096];
		while (n) {
			uint32_t c = n > sizeof(sink) ? (uint32_t)sizeof(sink) : n;
			if (move(fd, sink, c, 0) != (ssize_t)c) break;
			n -= c;
		}
		errno = EINVAL;
		return -1;
	}
	if (move(fd, buf, n, 0) != (ssize_t)n) { errno = EIO; return -1; }
	return (ssize_t)n;
}

static ssize_t dev_write(int fd, const void *buf, size_t n)
{
	if (n > 0xffffffffu || put_frame(fd, buf, (uint32_t)n) < 0) { if (!errno) errno = EIO; return -1; }
	return (ssize_t)n;
}

ssize_t read(int fd, void *b, size_t n)
{ NEXT(ssize_t, read, (int, void *, size_t)); return ours(fd) ? dev_read(fd, b, n) : next_read(fd, b, n); }
ssize_t __read_chk(int fd, void *b, size_t n, size_t bl)
{ NEXT(ssize_t, __read_chk, (int, void *, size_t, size_t)); return ours(fd) ? dev_read(fd, b, n) : next___read_chk(fd, b, n, bl); }
ssize_t write(int fd, const void *b, size_t n)
{ NEXT(ssize_t, write, (int, const void *, size_t)); return ours(fd) ? dev_write(fd, b, n) : next_write(fd, b, n); }
ssize_t pread(int fd, void *b, size_t n, off_t o)
{ NEXT(ssize_t, pread, (int, void *, size_t, off_t)); return ours(fd) ? dev_read(fd, b, n) : next_pread(fd, b, n, o); }
ssize_t pread64(int fd, void *b, size_t n, off_t o)
{ NEXT(ssize_t, pread64, (int, void *, size_t, off_t)); return ours(fd) ? dev_read(fd, b, n) : next_pread64(fd, b, n, o); }
ssize_t pwrite(int fd, const void *b, size_t n, off_t o)
{ NEXT(ssize_t, pwrite, (int, const void *, size_t, off_t)); return ours(fd) ? dev_write(fd, b, n) : next_pwrite(fd, b, n, o); }
ssize_t pwrite64(int fd, const void *b, size_t n, off_t o)
{ NEXT(ssize_t, pwrite64, (int, const void *, size_t, off_t)); return ours(fd) ? dev_write(fd, b, n) : next_pwrite64(fd, b, n, o); }

int close(int fd)
{
	NEXT(int, close, (int));
	if (ours(fd)) { dev_fd[fd] = 0; note("close fd %d", fd); }
	return next_close(fd);
}

/* fcntl on the device (O_NONBLOCK etc.) is applied to the socket: harmless. poll needs no hook. */

int ioctl(int fd, unsigned long req, ...)
{
	va_list ap; void *arg;
	NEXT(int, ioctl, (int, unsigned long, ...));
	va_start(ap, req); arg = va_arg(ap, void *); va_end(ap);
	if (req == FIFREEZE || req == FITHAW) {
		char link[64], target[512] = "?";
		const char *fake = getenv("HVSHIM_FAKE_FREEZE");
		ssize_t k;
		int r, e;
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		k = readlink(link, target, sizeof(target) - 1);
		if (k > 0) target[k] = 0;
		if (fake && fake[0] == '1') {
			fprintf(stderr, "[hvshim %d] FAKE %s %s -> 0\n", (int)getpid(), req == FIFREEZE ? "FIFREEZE" : "FITHAW", target);
			return 0;
		}
		r = next_ioctl(fd, req, arg);
		e = errno;
		fprintf(stderr, "[hvshim %d] %s %s -> %d\n", (int)getpid(), req == FIFREEZE ? "FIFREEZE" : "FITHAW", target, r);
		errno = e;
		return r;
	}
	return next_ioctl(fd, req, arg);
}

FILE *setmntent(const char *file, const char *mode)
{
	const char *m = getenv("HVSHIM_MOUNTS");
	NEXT(FILE *, setmntent, (const char *, const char *));
	if (m && *m && file && strcmp(file, "/proc/mounts") == 0) file = m;
	return next_setmntent(file, mode);
}

void openlog(const char *id, int opt, int fac) { (void)opt; (void)fac; if (id) snprintf(ident, sizeof(ident), "%s", id); }
void closelog(void) {}
void vsyslog(int pri, const char *fmt, va_list ap)
{
	fprintf(stderr, "<%d>%s[%d]: ", pri & 7, ident, (int)getpid());
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	fflush(stderr);
}
void __vsyslog_chk(int pri, int flag, const char *fmt, va_list ap) { (void)flag; vsyslog(pri, fmt, ap); }
void syslog(int pri, const char *fmt, ...) { va_list ap; va_start(ap, fmt); vsyslog(pri, fmt, ap); va_end(ap); }
void __syslog_chk(int pri, int flag, const char *fmt, ...) { va_list ap; (void)flag; va_start(ap, fmt); vsyslog(pri, fmt, ap); va_end(ap); }
