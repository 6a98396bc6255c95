/*
 * hvlock: holds POSIX record locks (fcntl F_SETLKW, whole file, write lock) on behalf of a Node process,
 * which has no fcntl. The KVP pool files are shared with Debian's hv_kvp_daemon and cloud-init's KVP
 * reporter, which lock them this way (tools/hv/hv_kvp_daemon.c kvp_acquire_lock), so ours must too.
 * Protocol on stdin/stdout, one line each:  "L <path>\n" -> "0\n" or "<errno>\n";  "U\n" -> "0\n".
 * One lock at a time. The lock dies with this process, so a crashed daemon never leaves a file locked.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
	char line[4200];
	int fd = -1;
	setvbuf(stdout, NULL, _IONBF, 0);
	while (fgets(line, sizeof(line), stdin)) {
		size_t n = strlen(line);
		if (n && line[n - 1] == '\n') line[--n] = 0;
		if (line[0] == 'L' && line[1] == ' ') {
			struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
			if (fd >= 0) close(fd);
			fd = open(line + 2, O_RDWR | O_CLOEXEC);
			if (fd < 0) { printf("%d\n", errno); continue; }
			while (fcntl(fd, F_SETLKW, &fl) < 0) {
				if (errno == EINTR) continue;
				printf("%d\n", errno);
				close(fd); fd = -1;
				goto next;
			}
			printf("0\n");
		} else if (line[0] == 'U') {
			if (fd >= 0) { struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET }; fcntl(fd, F_SETLK, &fl); close(fd); fd = -1; }
			printf("0\n");
		} else {
			printf("%d\n", EINVAL);
		}
next:;
	}
	return 0;
}
