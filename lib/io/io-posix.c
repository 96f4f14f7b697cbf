/* POSIX io backend, and io_open which picks the backend.  Durability is
 * fdatasync(2); locks are flock(2), held until close. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "io.h"

static ssize_t
posix_pread (struct io *io, void *buf, size_t n, uint64_t off)
{
  size_t done = 0;
  while (done < n) {
    ssize_t r = pread (io->fd, (char *) buf + done, n - done, (off_t) (off + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) break;
    done += (size_t) r;
  }
  return (ssize_t) done;
}

static int
posix_pwrite (struct io *io, const void *buf, size_t n, uint64_t off)
{
  size_t done = 0;
  while (done < n) {
    ssize_t r = pwrite (io->fd, (const char *) buf + done, n - done,
                        (off_t) (off + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) { errno = EIO; return -1; }
    done += (size_t) r;
  }
  return 0;
}

static int posix_sync (struct io *io) { return fdatasync (io->fd); }

static int
posix_truncate (struct io *io, uint64_t size)
{
  return ftruncate (io->fd, (off_t) size);
}

static int
posix_get_size (struct io *io, uint64_t *size)
{
  struct stat st;
  if (fstat (io->fd, &st) == -1)
    return -1;
  *size = (uint64_t) st.st_size;
  return 0;
}

static int
posix_lock (struct io *io, int exclusive)
{
  return flock (io->fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB);
}

static int
posix_close (struct io *io)
{
  int r = close (io->fd);
  free (io->path);
  free (io);
  return r;
}

static const struct io_ops posix_ops = {
  posix_pread, posix_pwrite, posix_sync, posix_truncate, posix_get_size,
  posix_lock, posix_close,
};

struct io *
io_posix_open (const char *path, int flags, mode_t mode)
{
  struct io *io = calloc (1, sizeof *io);
  if (!io) return NULL;
  io->path = strdup (path);
  if (!io->path) { free (io); return NULL; }
  io->fd = open (path, flags | O_CLOEXEC, mode);
  if (io->fd == -1) {
    int e = errno;
    free (io->path);
    free (io);
    errno = e;
    return NULL;
  }
  io->ops = &posix_ops;
  io->writable = (flags & O_ACCMODE) != O_RDONLY;
  return io;
}

struct io *
io_open (const char *path, int flags, mode_t mode)
{
  if (io_sim_enabled ())
    return io_sim_open (path, flags, mode);
  return io_posix_open (path, flags, mode);
}

int
io_pread_full (struct io *io, void *buf, size_t n, uint64_t off)
{
  ssize_t r = io_pread (io, buf, n, off);
  if (r < 0)
    return -1;
  if ((size_t) r != n) {
    errno = ENODATA;
    return -1;
  }
  return 0;
}
