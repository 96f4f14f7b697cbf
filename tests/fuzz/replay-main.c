/* Run a libFuzzer target over files named on the command line (or every
 * file in named directories), without libFuzzer: `make test` uses this
 * to replay the seed corpus and past crashers under ASan. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static int
run_file (const char *p)
{
  FILE *f = fopen (p, "rb");
  if (!f) { perror (p); return 1; }
  fseek (f, 0, SEEK_END);
  long n = ftell (f);
  rewind (f);
  uint8_t *b = malloc (n > 0 ? (size_t) n : 1);
  if (!b || fread (b, 1, (size_t) n, f) != (size_t) n) { perror (p); fclose (f); free (b); return 1; }
  fclose (f);
  LLVMFuzzerTestOneInput (b, (size_t) n);
  free (b);
  return 0;
}

int
main (int argc, char **argv)
{
  int errors = 0, count = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat (argv[i], &st) == -1) { perror (argv[i]); errors++; continue; }
    if (!S_ISDIR (st.st_mode)) { errors += run_file (argv[i]); count++; continue; }
    DIR *d = opendir (argv[i]);
    struct dirent *e;
    while (d && (e = readdir (d))) {
      if (e->d_name[0] == '.') continue;
      char p[4096];
      snprintf (p, sizeof p, "%s/%s", argv[i], e->d_name);
      errors += run_file (p);
      count++;
    }
    if (d) closedir (d);
  }
  printf ("%d inputs replayed\n", count);
  return errors ? 1 : 0;
}
