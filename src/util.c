/*
** util.c: layer 0, plain C. The monotonic clock and ASCII case helpers
** every layer above uses. No libcurl, no Lua.
*/

/* ---- small helpers every room uses ------------------------------------ */

static double monotonic_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int ascii_lower(int ch) {
  return (ch >= 'A' && ch <= 'Z') ? ch + 32 : ch;
}

/* Whether the first n bytes of a and b are equal, ignoring ASCII case. */
static int same_ci(const char *a, const char *b, size_t n) {
  size_t i;
  for (i = 0; i < n; i++)
    if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i])) return 0;
  return 1;
}

/* Whether the n bytes at s spell `name`, ignoring ASCII case. */
static int equals_ci(const char *s, size_t n, const char *name) {
  return strlen(name) == n && same_ci(s, name, n);
}
