/* Private declarations every layer of libvhdkit may use: errors, size
 * arithmetic, small helpers.  The layers themselves and the locking
 * rules L-n are in docs/ARCHITECTURE.md; each layer has its own header
 * (io/io.h, driver.h, chain.h, rct/rct.h, disk.h, set/set.h). */
#ifndef VHDKIT_INTERNAL_H
#define VHDKIT_INTERNAL_H

#include <pthread.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "vhdkit.h"
#include "io/io.h"

#define ATTR_PRINTF(a, b) __attribute__((format (printf, a, b)))

/* ---- errors (error.c): thread-local, like errno ---- */
/* Record an error: RC is a VHDKIT_RC_* code, ERRNUM an errno or 0. */
void set_error (uint32_t rc, int errnum, const char *fmt, ...) ATTR_PRINTF (3, 4);
/* Record an error whose code follows from ERRNUM (see rc_from_errno). */
void set_error_errno (int errnum, const char *fmt, ...) ATTR_PRINTF (2, 3);
uint32_t rc_from_errno (int errnum);
/* Prefix the current error message with "PREFIX: " (adds context). */
void error_prefix (const char *fmt, ...) ATTR_PRINTF (1, 2);
void clear_error (void);
/* The calling thread's last error: message, errno, VHDKIT_RC_* code
 * (what vhdkit_get_error, _errno and _error_code return). */
const char *error_message (void);
int error_errno (void);
uint32_t error_code (void);
/* The documented name of return code RC, or NULL (vhdkit_rc_name). */
const char *rc_name (uint32_t rc);
/* Cleanup on a failure path must not replace the error that caused it:
 * between error_hold and error_release, set_error records nothing.
 * Holds nest.  Used by the *_abandon helpers only. */
void error_hold (void);
void error_release (void);

/* ---- size helpers ---- */
static inline bool is_pow2 (uint64_t v) { return v && !(v & (v - 1)); }
static inline uint64_t div_round_up (uint64_t a, uint64_t b)
{ return a / b + (a % b != 0); }
static inline uint64_t round_up (uint64_t a, uint64_t b)
{ return div_round_up (a, b) * b; }
/* a + b without overflow into *r; false on overflow. */
static inline bool add_ok (uint64_t a, uint64_t b, uint64_t *r)
{ return !__builtin_add_overflow (a, b, r); }
static inline bool mul_ok (uint64_t a, uint64_t b, uint64_t *r)
{ return !__builtin_mul_overflow (a, b, r); }

#define MiB (UINT64_C(1) << 20)
#define KiB (UINT64_C(1) << 10)

/* Relaxed and acquire/release loads and stores of plain fields that
 * are shared between threads (the rules that need them cite L-n). */
#define LOAD_RELAXED(p)     __atomic_load_n ((p), __ATOMIC_RELAXED)
#define LOAD_ACQUIRE(p)     __atomic_load_n ((p), __ATOMIC_ACQUIRE)
#define STORE_RELAXED(p, v) __atomic_store_n ((p), (v), __ATOMIC_RELAXED)
#define STORE_RELEASE(p, v) __atomic_store_n ((p), (v), __ATOMIC_RELEASE)

/* Lock for the rest of the scope (nbdkit's habit). */
static inline void unlock_cleanup (pthread_mutex_t **m)
{ if (*m) pthread_mutex_unlock (*m); }
#define LOCK_FOR_SCOPE(m)                                               \
  __attribute__((cleanup (unlock_cleanup))) pthread_mutex_t *scope_lock_ = (m); \
  pthread_mutex_lock (scope_lock_)

#define MAX_CHAIN_DEPTH 64

#endif
