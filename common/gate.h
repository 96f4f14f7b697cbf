/* A reader-writer gate for a data path.
 *
 * Many threads pass the gate at once (gate_enter / gate_leave) and pay
 * two atomic operations on a counter of their own slot, never on a line
 * that other threads write: a thread picks its slot once, round robin.
 * One thread at a time may close the gate (gate_close): it waits until
 * every thread that passed has left, and keeps new ones waiting until
 * gate_open.  Entering and closing meet as in Dekker's algorithm: an
 * entering thread counts itself, then looks at the closed flag; a
 * closer sets the flag, then looks at the counts (sequentially
 * consistent): one of the two sees the other.
 *
 * A thread must not close a gate it has entered (it would wait for
 * itself).  A gate closed for good (gate_kill) turns every thread that
 * enters away: gate_enter returns -1.
 */
#ifndef VHDKIT_GATE_H
#define VHDKIT_GATE_H

#include <pthread.h>
#include <stdbool.h>

#define GATE_SLOTS 16

struct gate {
  struct { long n; char pad[64 - sizeof (long)]; } slot[GATE_SLOTS];
  int closed;                   /* atomic: a closer waits or holds the gate */
  pthread_mutex_t m;            /* with cv: sleeping enterers and closers */
  pthread_cond_t cv;
  bool held;                    /* under m: the gate is closed */
  bool dead;                    /* atomic: closed for good (gate_kill) */
  unsigned sleepers;            /* under m: enterers waiting for gate_open */
};

void gate_init (struct gate *g);
void gate_destroy (struct gate *g);

/* Pass the gate (waiting while it is closed); returns the slot to give
 * to gate_leave, or -1 if the gate was killed. */
int gate_enter (struct gate *g);
void gate_leave (struct gate *g, int slot);

/* Close the gate: wait for every thread inside to leave.  One closer at
 * a time (others wait). */
void gate_close (struct gate *g);
void gate_open (struct gate *g);
/* Close the gate for good: every thread inside has left and every
 * thread waiting to enter has been turned away when it returns, so the
 * gate may be destroyed (threads that come later must not touch it). */
void gate_kill (struct gate *g);

#endif
