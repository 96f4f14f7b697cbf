/* The io layer (layer 1, docs/ARCHITECTURE.md): every byte libvhdkit
 * reads or writes goes through here, and nothing above it calls the
 * system on a file it opened.
 *
 * A struct io is one open file, made by io_open through the current
 * backend.  The library has one backend, POSIX (io-posix.c: pread,
 * pwrite, fdatasync, ftruncate, fallocate, flock).  Test programs plug in
 * others with io_set_backend (the fault and crash simulator of
 * tests/sim/io-sim.c, docs/IO-SIM.md); the shipped library never reads
 * the environment to choose one.
 *
 * Errors: every call returns 0 (or a count) on success and -1 with errno
 * set on failure; the caller turns that into a vhdkit error with context.
 * Thread safety: calls on one struct io may run concurrently from many
 * threads (positioned I/O only); close must not race with other calls.
 */
#ifndef VHDKIT_IO_H
#define VHDKIT_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct io;

/* How io_zero_range makes a range read as zeros. */
#define IO_ZERO_PUNCH 1        /* deallocate (a hole), keeping the size */
#define IO_ZERO_ALLOC 2        /* allocated zeros */
#define IO_ZERO_PREALLOC 3     /* allocate space that already reads as zeros
                                  (never written: the file was extended) */

/* io_lock_record's HOW. */
#define IO_LOCK_NONE      0
#define IO_LOCK_SHARED    1
#define IO_LOCK_EXCLUSIVE 2

/* What io_stat reports (for fingerprints and identity). */
struct io_stat {
  uint64_t dev, ino, size;
  uint64_t mtime_ns, ctime_ns;
};

struct io_ops {
  /* Read up to N bytes at OFF.  Returns the number read, which is short
   * only at end of file; -1 on error. */
  ssize_t (*pread) (struct io *, void *buf, size_t n, uint64_t off);
  /* Write all N bytes at OFF (extending the file if needed); 0 or -1. */
  int (*pwrite) (struct io *, const void *buf, size_t n, uint64_t off);
  /* Make every completed write to this file durable; 0 or -1. */
  int (*sync) (struct io *);
  /* Set the file's size; 0 or -1. */
  int (*truncate) (struct io *, uint64_t size);
  /* Make [OFF, OFF+N) read as zeros the way HOW says (IO_ZERO_*), without
   * changing the size; -1 with EOPNOTSUPP if the file system cannot. */
  int (*zero_range) (struct io *, uint64_t off, uint64_t n, int how);
  /* The file's identity, size and times; 0 or -1. */
  int (*stat) (struct io *, struct io_stat *st);
  /* The first data at or after OFF and the hole after it (SEEK_DATA,
   * SEEK_HOLE); -1 with ENXIO when only a hole is left. */
  int (*next_data) (struct io *, uint64_t off, uint64_t *data, uint64_t *hole);
  /* Start writing back what is dirty (a hint: no result). */
  void (*hint_writeback) (struct io *);
  /* Non-blocking advisory lock of the whole file (flock): EXCLUSIVE 1 =
   * write lock, 0 = shared.  -1 with errno EWOULDBLOCK when another
   * holder conflicts.  Held until close. */
  int (*lock) (struct io *, int exclusive);
  /* The same as a record lock (open file description lock): converting
   * a held lock is atomic, and on failure the old lock stays.  HOW is
   * IO_LOCK_SHARED, IO_LOCK_EXCLUSIVE or IO_LOCK_NONE.  A file uses one
   * kind of lock or the other. */
  int (*lock_record) (struct io *, int how);
  /* Close (without syncing); 0 or -1.  Frees the struct either way. */
  int (*close) (struct io *);
};

struct io {
  const struct io_ops *ops;
  int writable;
  char *path;          /* as opened; owned by the io */
};

/* A source of struct io. */
struct io_backend {
  const char *name;
  /* FLAGS are open(2) flags (O_RDONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC);
   * O_CLOEXEC is implied.  NULL with errno set on failure. */
  struct io *(*open) (const char *path, int flags, mode_t mode);
};

extern const struct io_backend io_posix_backend;

/* Open PATH through the current backend. */
struct io *io_open (const char *path, int flags, mode_t mode);

/* Make every later io_open use B (NULL: POSIX).  For test programs,
 * which link the library statically: it is not exported from
 * libvhdkit.so.  Call it before any file is opened. */
void io_set_backend (const struct io_backend *b);

static inline ssize_t io_pread (struct io *io, void *b, size_t n, uint64_t o)
{ return io->ops->pread (io, b, n, o); }
static inline int io_pwrite (struct io *io, const void *b, size_t n, uint64_t o)
{ return io->ops->pwrite (io, b, n, o); }
static inline int io_sync (struct io *io) { return io->ops->sync (io); }
static inline int io_truncate (struct io *io, uint64_t s)
{ return io->ops->truncate (io, s); }
static inline int io_zero_range (struct io *io, uint64_t o, uint64_t n, int how)
{ return io->ops->zero_range (io, o, n, how); }
static inline int io_stat (struct io *io, struct io_stat *st)
{ return io->ops->stat (io, st); }
static inline int io_next_data (struct io *io, uint64_t o, uint64_t *d, uint64_t *h)
{ return io->ops->next_data (io, o, d, h); }
static inline void io_hint_writeback (struct io *io) { io->ops->hint_writeback (io); }
static inline int io_lock (struct io *io, int excl)
{ return io->ops->lock (io, excl); }
static inline int io_lock_record (struct io *io, int how)
{ return io->ops->lock_record (io, how); }
static inline int io_close (struct io *io) { return io->ops->close (io); }

/* Make the directory entry of PATH durable (fsync of its folder): after
 * creating, renaming or removing PATH.  0 or -1. */
int io_sync_parent_dir (const char *path);

/* The file's size; 0 or -1. */
int io_get_size (struct io *io, uint64_t *size);

/* Read exactly N bytes at OFF; reading past end of file fails with
 * errno ENODATA so callers can name it. */
int io_pread_full (struct io *io, void *buf, size_t n, uint64_t off);

#endif
