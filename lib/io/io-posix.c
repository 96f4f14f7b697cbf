/* The POSIX io backend: positioned reads and writes on one descriptor,
 * durability by fdatasync(2), zeroing by fallocate(2), locks by flock(2)
 * or open file description record locks, held until close.
 *
 * Thread safety: every call but close is positioned and keeps no state
 * of its own, so calls on one file may run concurrently. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/falloc.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "io.h"

struct posix_io {
  struct io io;                 /* first: a struct io * is a posix_io * */
  int fd;
};

static int
fd_of (struct io *io)
{
  return ((struct posix_io *) io)->fd;
}

static ssize_t
posix_pread (struct io *io, void *buf, size_t n, uint64_t off)
{
  size_t done = 0;
  while (done < n) {
    ssize_t r = pread (fd_of (io), (char *) buf + done, n - done, (off_t) (off + done));
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
    ssize_t r = pwrite (fd_of (io), (const char *) buf + done, n - done,
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

static int posix_sync (struct io *io) { return fdatasync (fd_of (io)); }

static int
posix_truncate (struct io *io, uint64_t size)
{
  return ftruncate (fd_of (io), (off_t) size);
}

static int
posix_zero_range (struct io *io, uint64_t off, uint64_t n, int how)
{
  int mode = how == IO_ZERO_PUNCH ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
           : how == IO_ZERO_PREALLOC ? FALLOC_FL_KEEP_SIZE
           : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
  if (fallocate (fd_of (io), mode, (off_t) off, (off_t) n) == -1) {
    if (errno == ENOSYS || errno == EINVAL) errno = EOPNOTSUPP;
    return -1;
  }
  return 0;
}

static int
posix_stat (struct io *io, struct io_stat *out)
{
  struct stat st;
  if (fstat (fd_of (io), &st) == -1)
    return -1;
  out->dev = (uint64_t) st.st_dev;
  out->ino = (uint64_t) st.st_ino;
  out->size = (uint64_t) st.st_size;
  out->mtime_ns = (uint64_t) st.st_mtim.tv_sec * 1000000000u + (uint64_t) st.st_mtim.tv_nsec;
  out->ctime_ns = (uint64_t) st.st_ctim.tv_sec * 1000000000u + (uint64_t) st.st_ctim.tv_nsec;
  return 0;
}

static int
posix_next_data (struct io *io, uint64_t off, uint64_t *data, uint64_t *hole)
{
  off_t d = lseek (fd_of (io), (off_t) off, SEEK_DATA);
  if (d == -1) return -1;
  off_t h = lseek (fd_of (io), d, SEEK_HOLE);
  if (h == -1) return -1;
  *data = (uint64_t) d;
  *hole = (uint64_t) h;
  return 0;
}

static void
posix_hint_writeback (struct io *io)
{
  sync_file_range (fd_of (io), 0, 0, SYNC_FILE_RANGE_WRITE);
}

static int
posix_lock (struct io *io, int exclusive)
{
  return flock (fd_of (io), (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB);
}

static int
posix_lock_record (struct io *io, int how)
{
  struct flock fl = {
    .l_type = how == IO_LOCK_EXCLUSIVE ? F_WRLCK : how == IO_LOCK_SHARED ? F_RDLCK : F_UNLCK,
    .l_whence = SEEK_SET, .l_start = 0, .l_len = 0,
  };
  if (fcntl (fd_of (io), F_OFD_SETLK, &fl) == -1) {
    if (errno == EACCES || errno == EAGAIN) errno = EWOULDBLOCK;
    return -1;
  }
  return 0;
}

static int
posix_close (struct io *io)
{
  int r = close (fd_of (io));
  free (io->path);
  free (io);
  return r;
}

static const struct io_ops posix_ops = {
  .pread = posix_pread,
  .pwrite = posix_pwrite,
  .sync = posix_sync,
  .truncate = posix_truncate,
  .zero_range = posix_zero_range,
  .stat = posix_stat,
  .next_data = posix_next_data,
  .hint_writeback = posix_hint_writeback,
  .lock = posix_lock,
  .lock_record = posix_lock_record,
  .close = posix_close,
};

static struct io *
posix_open (const char *path, int flags, mode_t mode)
{
  struct posix_io *p = calloc (1, sizeof *p);
  if (!p) return NULL;
  p->io.path = strdup (path);
  if (!p->io.path) { free (p); return NULL; }
  p->fd = open (path, flags | O_CLOEXEC, mode);
  if (p->fd == -1) {
    int e = errno;
    free (p->io.path);
    free (p);
    errno = e;
    return NULL;
  }
  p->io.ops = &posix_ops;
  p->io.writable = (flags & O_ACCMODE) != O_RDONLY;
  return &p->io;
}

const struct io_backend io_posix_backend = {
  .name = "posix",
  .open = posix_open,
};
