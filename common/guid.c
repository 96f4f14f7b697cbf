/* GUID helpers (see guid.h for the byte order). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <errno.h>
#include <sys/random.h>

#include "guid.h"

int
guid_generate (struct guid *g)
{
  size_t got = 0;
  while (got < sizeof g->b) {
    ssize_t r = getrandom (g->b + got, sizeof g->b - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    got += (size_t) r;
  }
  /* Version 4, variant 1.  Byte 7 holds the high byte of field 3
   * (stored little-endian), byte 8 the variant. */
  g->b[7] = (uint8_t) ((g->b[7] & 0x0f) | 0x40);
  g->b[8] = (uint8_t) ((g->b[8] & 0x3f) | 0x80);
  return 0;
}

bool
guid_is_zero (const struct guid *g)
{
  static const struct guid z;
  return memcmp (g->b, z.b, 16) == 0;
}

bool
guid_eq (const struct guid *a, const struct guid *b)
{
  return memcmp (a->b, b->b, 16) == 0;
}

/* Order in which the 16 stored bytes appear in the text form. */
static const int text_order[16] = { 3, 2, 1, 0, 5, 4, 7, 6,
                                    8, 9, 10, 11, 12, 13, 14, 15 };

void
guid_to_text (const struct guid *g, char *out)
{
  char *p = out;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      *p++ = '-';
    p += sprintf (p, "%02x", g->b[text_order[i]]);
  }
  *p = '\0';
}

static int
hexval (int c)
{
  if (c >= '0' && c <= '9') return c - '0';
  c = tolower (c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

int
guid_from_text (struct guid *g, const char *s)
{
  size_t len = strlen (s);
  if (len == GUID_TEXT_LEN + 2 && s[0] == '{' && s[len - 1] == '}') {
    s++;
    len -= 2;
  }
  if (len != GUID_TEXT_LEN)
    return -1;
  int i = 0;
  for (size_t k = 0; k < len; ) {
    if (k == 8 || k == 13 || k == 18 || k == 23) {
      if (s[k] != '-') return -1;
      k++;
      continue;
    }
    int hi = hexval ((unsigned char) s[k]), lo = hexval ((unsigned char) s[k + 1]);
    if (hi < 0 || lo < 0 || i >= 16)
      return -1;
    g->b[text_order[i++]] = (uint8_t) (hi << 4 | lo);
    k += 2;
  }
  return i == 16 ? 0 : -1;
}

struct guid
guid_const (const char *s)
{
  struct guid g;
  if (guid_from_text (&g, s) == -1)
    abort ();
  return g;
}
