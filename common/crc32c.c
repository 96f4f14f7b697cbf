/* CRC-32C, slicing-by-8 in software, or the SSE4.2 instruction when the
 * processor has it (checked once at first use). */
#include <stdint.h>
#include <string.h>
#include <pthread.h>

#include "crc32c.h"

static uint32_t table[8][256];
static int have_sse42;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void
init (void)
{
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++)
      c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++)
    for (int t = 1; t < 8; t++)
      table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
#if defined(__x86_64__)
  __builtin_cpu_init ();
  have_sse42 = __builtin_cpu_supports ("sse4.2");
#endif
}

#if defined(__x86_64__)
__attribute__((target ("sse4.2")))
static uint32_t
crc_hw (uint32_t c, const uint8_t *p, size_t len)
{
  uint64_t c64 = c;
  while (len >= 8) {
    uint64_t v;
    memcpy (&v, p, 8);
    c64 = __builtin_ia32_crc32di (c64, v);
    p += 8; len -= 8;
  }
  c = (uint32_t) c64;
  while (len--)
    c = __builtin_ia32_crc32qi (c, *p++);
  return c;
}
#endif

static uint32_t
crc_sw (uint32_t c, const uint8_t *p, size_t len)
{
  while (len >= 8) {
    uint32_t lo = c ^ ((uint32_t) p[0] | (uint32_t) p[1] << 8 |
                       (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24);
    c = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^
        table[5][(lo >> 16) & 0xff] ^ table[4][lo >> 24] ^
        table[3][p[4]] ^ table[2][p[5]] ^ table[1][p[6]] ^ table[0][p[7]];
    p += 8; len -= 8;
  }
  while (len--)
    c = table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
  return c;
}

uint32_t
crc32c (uint32_t crc, const void *buf, size_t len)
{
  pthread_once (&once, init);
  uint32_t c = ~crc;
#if defined(__x86_64__)
  if (have_sse42)
    return ~crc_hw (c, buf, len);
#endif
  return ~crc_sw (c, buf, len);
}

uint32_t
crc32c_skip (const void *buf, size_t len, size_t csum_off)
{
  static const uint8_t zero[4];
  const uint8_t *p = buf;
  uint32_t c = crc32c (0, p, csum_off);
  c = crc32c (c, zero, 4);
  return crc32c (c, p + csum_off + 4, len - csum_off - 4);
}
