/* The io simulator (tests/sim/io-sim.c, docs/IO-SIM.md), for test
 * programs only.  Linking io-sim.o installs it as the io backend; the
 * environment variable VHDKIT_SIM chooses what it does. */
#ifndef VHDKIT_IO_SIM_H
#define VHDKIT_IO_SIM_H

#include "io/io.h"

extern const struct io_backend io_sim_backend;

/* Non-zero when VHDKIT_SIM selects a simulation mode. */
int io_sim_enabled (void);

#endif
