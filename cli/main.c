/* vhdkit CLI: entry point.  Handles --help and --version, picks the verb
 * named by argv[1] and runs it, then makes sure stdout reached its
 * destination (a failed write to stdout fails the command).
 *
 * --connect SOCKET may also come before the verb (remote.h).
 *
 * SIGPIPE is ignored so that a reader that goes away (vhdkit read | head)
 * shows up as EPIPE, which the verbs turn into a quiet exit status 1.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "vhdkit.h"
#include "cli.h"
#include "remote.h"

static const struct cli_verb *const verbs[] = {
  &cli_verb_create, &cli_verb_info, &cli_verb_check, &cli_verb_read,
  &cli_verb_write, &cli_verb_convert, &cli_verb_resize, &cli_verb_merge,
  &cli_verb_rct, &cli_verb_changes, &cli_verb_set,
};
#define NVERBS (sizeof verbs / sizeof verbs[0])

static void
print_help (void)
{
  size_t i;

  printf ("Usage: vhdkit [--connect SOCKET] VERB [OPTIONS] OPERANDS...\n"
          "       vhdkit --help | --version\n"
          "\n"
          "Create, inspect, copy and modify VHDX and raw disk images.\n"
          "\n"
          "Verbs:\n");
  for (i = 0; i < NVERBS; i++)
    printf ("  %-10s %s\n", verbs[i]->name, verbs[i]->summary);
  printf ("\n"
          "With --connect SOCKET (or VHDKIT_CONNECT=SOCKET in the environment)\n"
          "a verb calls vhdkitd on SOCKET instead of opening the files.\n"
          "Run 'vhdkit VERB --help' for the options of a verb.\n"
          "Exit status: 0 success, 1 failure, 2 usage error.\n");
}

int
main (int argc, char **argv)
{
  const char *arg;
  int status;
  size_t i;

  signal (SIGPIPE, SIG_IGN);

  /* vhdkit --connect SOCKET VERB ...: as if given to the verb. */
  while (argc > 1 && strncmp (argv[1], "--connect", 9) == 0 &&
         (argv[1][9] == '\0' || argv[1][9] == '=')) {
    int used = argv[1][9] == '=' ? 1 : 2;
    const char *s = used == 1 ? argv[1] + 10 : argc > 2 ? argv[2] : NULL;

    if (s == NULL || *s == '\0')
      return cli_usage ("--connect needs the path of vhdkitd's socket");
    remote_set_socket (s);
    argv[used] = argv[0];       /* the verbs do not read argv[0] */
    argc -= used;
    argv += used;
  }
  arg = argc > 1 ? argv[1] : NULL;

  if (arg == NULL)
    return cli_usage ("missing verb");
  if (strcmp (arg, "-h") == 0 || strcmp (arg, "--help") == 0) {
    print_help ();
    return cli_finish_stdout ();
  }
  if (strcmp (arg, "-V") == 0 || strcmp (arg, "--version") == 0) {
    printf ("vhdkit %s\n", VHDKIT_VERSION_STRING);
    return cli_finish_stdout ();
  }
  if (arg[0] == '-')
    return cli_usage ("unrecognized option '%s'", arg);

  for (i = 0; i < NVERBS; i++) {
    if (strcmp (arg, verbs[i]->name) == 0)
      break;
  }
  if (i == NVERBS)
    return cli_usage ("unknown verb '%s'", arg);

  cli_verb_name = verbs[i]->name;
  status = verbs[i]->run (argc - 1, argv + 1);
  if (cli_finish_stdout () != 0 && status == CLI_EXIT_OK)
    status = CLI_EXIT_FAILURE;
  return status;
}
