/* The io layer: every byte libvhdkit reads or writes goes through here.
 *
 * A struct io is one open file.  The default backend is POSIX (pread,
 * pwrite, fdatasync, ftruncate, flock).  A simulation backend (io-sim.c)
 * can be selected with the environment variable VHDKIT_SIM so that tests
 * can fail the Nth write or sync, or simulate a power loss at the Nth sync
 * (see docs/CRASH-SAFETY.md, "Testing").  Format code never calls the
 * system directly.
 *
 * Errors: every call returns 0 (or a count) on success and -1 with errno
 * set on failure; the caller turns that into a vhdkit error with context.
 */
#ifndef VHDKIT_IO_H
#define VHDKIT_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct io;

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
  /* The file's current size; 0 or -1. */
  int (*get_size) (struct io *, uint64_t *size);
  /* Non-blocking advisory lock: EXCLUSIVE 1 = write lock, 0 = shared.
   * -1 with errno EWOULDBLOCK when another holder conflicts. */
  int (*lock) (struct io *, int exclusive);
  /* Close (without syncing); 0 or -1.  Frees the struct either way. */
  int (*close) (struct io *);
};

struct io {
  const struct io_ops *ops;
  int fd;              /* the real descriptor (every backend has one) */
  int writable;
  char *path;          /* as opened; owned by the io */
};

/* Open PATH.  FLAGS are open(2) flags (O_RDONLY, O_RDWR, O_CREAT, O_EXCL);
 * O_CLOEXEC is added.  Returns NULL with errno set on failure. */
struct io *io_open (const char *path, int flags, mode_t mode);

/* Backends. */
struct io *io_posix_open (const char *path, int flags, mode_t mode);
struct io *io_sim_open (const char *path, int flags, mode_t mode);
/* Non-zero when VHDKIT_SIM selects the simulation backend. */
int io_sim_enabled (void);

static inline ssize_t io_pread (struct io *io, void *b, size_t n, uint64_t o)
{ return io->ops->pread (io, b, n, o); }
static inline int io_pwrite (struct io *io, const void *b, size_t n, uint64_t o)
{ return io->ops->pwrite (io, b, n, o); }
static inline int io_sync (struct io *io) { return io->ops->sync (io); }
static inline int io_truncate (struct io *io, uint64_t s)
{ return io->ops->truncate (io, s); }
static inline int io_get_size (struct io *io, uint64_t *s)
{ return io->ops->get_size (io, s); }
static inline int io_lock (struct io *io, int excl)
{ return io->ops->lock (io, excl); }
static inline int io_close (struct io *io) { return io->ops->close (io); }

/* Read exactly N bytes at OFF; reading past end of file is an error
 * (errno = 0 is replaced by EIO-free ENODATA so callers can name it). */
int io_pread_full (struct io *io, void *buf, size_t n, uint64_t off);

#endif
