/* The reader-writer gate (gate.h). */
#include "gate.h"

#define SEQ __ATOMIC_SEQ_CST

static unsigned next_slot;                   /* atomic */
static _Thread_local int my_slot = -1;

static int
slot_of_thread (void)
{
  if (my_slot < 0)
    my_slot = (int) (__atomic_fetch_add (&next_slot, 1, __ATOMIC_RELAXED) % GATE_SLOTS);
  return my_slot;
}

void
gate_init (struct gate *g)
{
  for (int i = 0; i < GATE_SLOTS; i++) g->slot[i].n = 0;
  g->closed = 0;
  g->held = false;
  g->dead = false;
  g->sleepers = 0;
  pthread_mutex_init (&g->m, NULL);
  pthread_cond_init (&g->cv, NULL);
}

void
gate_destroy (struct gate *g)
{
  pthread_mutex_destroy (&g->m);
  pthread_cond_destroy (&g->cv);
}

static long
inside (struct gate *g)
{
  long n = 0;
  for (int i = 0; i < GATE_SLOTS; i++) n += __atomic_load_n (&g->slot[i].n, SEQ);
  return n;
}

int
gate_enter (struct gate *g)
{
  int s = slot_of_thread ();
  for (;;) {
    __atomic_add_fetch (&g->slot[s].n, 1, SEQ);
    if (!__atomic_load_n (&g->closed, SEQ)) return s;
    /* Closed: step back under the mutex (so that a closer waiting for
     * the count sees it drop, and a killer sees this thread), and wait. */
    pthread_mutex_lock (&g->m);
    __atomic_sub_fetch (&g->slot[s].n, 1, SEQ);
    pthread_cond_broadcast (&g->cv);
    while (__atomic_load_n (&g->closed, SEQ) && !g->dead) {
      g->sleepers++;
      pthread_cond_wait (&g->cv, &g->m);
      g->sleepers--;
    }
    bool dead = g->dead;
    if (dead) pthread_cond_broadcast (&g->cv);   /* the killer counts sleepers */
    pthread_mutex_unlock (&g->m);
    if (dead) return -1;
  }
}

void
gate_leave (struct gate *g, int s)
{
  __atomic_sub_fetch (&g->slot[s].n, 1, SEQ);
  if (__atomic_load_n (&g->closed, SEQ)) {
    pthread_mutex_lock (&g->m);
    pthread_cond_broadcast (&g->cv);
    pthread_mutex_unlock (&g->m);
  }
}

void
gate_close (struct gate *g)
{
  pthread_mutex_lock (&g->m);
  while (g->held) pthread_cond_wait (&g->cv, &g->m);
  g->held = true;
  __atomic_store_n (&g->closed, 1, SEQ);
  while (inside (g) != 0) pthread_cond_wait (&g->cv, &g->m);
  pthread_mutex_unlock (&g->m);
}

void
gate_open (struct gate *g)
{
  pthread_mutex_lock (&g->m);
  g->held = false;
  __atomic_store_n (&g->closed, 0, SEQ);
  pthread_cond_broadcast (&g->cv);
  pthread_mutex_unlock (&g->m);
}

void
gate_kill (struct gate *g)
{
  gate_close (g);
  pthread_mutex_lock (&g->m);
  g->dead = true;
  pthread_cond_broadcast (&g->cv);
  while (g->sleepers) pthread_cond_wait (&g->cv, &g->m);
  pthread_mutex_unlock (&g->m);
}
